package tcp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"
)

// Benchmarks of 128-byte unary round trips over loopback TCP, with 1 and 64
// concurrent callers, next to a raw baseline. Run:
//
//	go test -run x -bench . -benchtime 3s ./transport/tcp
//
// Unary128: callers share one Conn (so one connection), as paxos does.
//
// RawEcho128: the baseline. Each caller has its own TCP connection to an
// echo goroutine of its own, and loops write 128 bytes / read 128 bytes: no
// framing, no multiplexing, no handler goroutines, no coalescing. That is
// the most N independent ping-pongers get from the kernel; the transport
// should reach at least 70% of it at 64 callers.
//
// Both report ops/s (round trips per second over all callers).

var benchCallers = []int{1, 64}

func BenchmarkUnary128(b *testing.B) {
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			srv, err := Listen("tcp", "127.0.0.1:0", echoMux(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			d, err := NewDialer(Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()
			c, err := d.Dial(ctx, srv.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := bytes.Repeat([]byte{'x'}, 128)
			if _, err := c.Call(ctx, "echo", req); err != nil {
				b.Fatal(err)
			}
			runCallers(b, callers, func() error {
				reply, err := c.Call(ctx, "echo", req)
				if err == nil && len(reply) != len(req) {
					err = fmt.Errorf("reply of %d bytes", len(reply))
				}
				return err
			})
		})
	}
}

func BenchmarkRawEcho128(b *testing.B) {
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			defer ln.Close()
			wg.Go(func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					wg.Go(func() {
						defer nc.Close()
						buf := make([]byte, 128)
						for {
							if _, err := io.ReadFull(nc, buf); err != nil {
								return
							}
							if _, err := nc.Write(buf); err != nil {
								return
							}
						}
					})
				}
			})
			conns := make(chan net.Conn, callers)
			for range callers {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				conns <- nc
			}
			req := bytes.Repeat([]byte{'x'}, 128)
			runCallersWith(b, callers, func() func() error {
				nc := <-conns
				reply := make([]byte, 128)
				return func() error {
					if _, err := nc.Write(req); err != nil {
						return err
					}
					_, err := io.ReadFull(nc, reply)
					return err
				}
			})
		})
	}
}

// runCallers runs b.N calls of call over callers goroutines.
func runCallers(b *testing.B, callers int, call func() error) {
	runCallersWith(b, callers, func() func() error { return call })
}

// runCallersWith is runCallers with per-goroutine setup: newCaller runs in
// each goroutine before the clock starts counting its calls.
func runCallersWith(b *testing.B, callers int, newCaller func() func() error) {
	b.SetBytes(2 * 128)
	b.ReportAllocs()
	calls := make([]func() error, callers)
	for i := range calls {
		calls[i] = newCaller()
	}
	var next atomic.Int64
	var g errgroup.Group
	b.ResetTimer()
	for _, call := range calls {
		g.Go(func() error {
			for next.Add(1) <= int64(b.N) {
				if err := call(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
