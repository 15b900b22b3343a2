package transporttest

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"
)

// Benchmark measures unary round trips of 128-byte requests and replies with
// 1 and 64 concurrent callers sharing one Conn, each in a fresh Harness from
// newHarness. ns/op is per call.
func Benchmark(b *testing.B, newHarness func(t testing.TB) Harness) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("Unary128/callers=%d", callers), func(b *testing.B) {
			h := newHarness(b)
			c := dial(b, h, h.Listen(echoMux()))
			req := bytes.Repeat([]byte{'x'}, 128)
			ctx := b.Context()
			if _, err := c.Call(ctx, "echo", req); err != nil { // warm up the connection
				b.Fatal(err)
			}
			b.SetBytes(2 * int64(len(req)))
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			var g errgroup.Group
			for range callers {
				g.Go(func() error {
					for next.Add(1) <= int64(b.N) {
						reply, err := c.Call(ctx, "echo", req)
						if err != nil {
							return err
						}
						if len(reply) != len(req) {
							return fmt.Errorf("reply of %d bytes, want %d", len(reply), len(req))
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
