package tcp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// checkLeaks registers a cleanup, run after every other cleanup of t, that
// waits until no goroutine of this package (outside the test framework)
// is left.
func checkLeaks(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		var leaked string
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			leaked = packageGoroutines()
			if leaked == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("leaked goroutines:\n%s", leaked)
			}
			<-tick.C
		}
	})
}

func packageGoroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if isPackageGoroutine(g) {
			leaked = append(leaked, g)
		}
	}
	return strings.Join(leaked, "\n\n")
}

// isPackageGoroutine reports whether the goroutine whose stack is g runs
// code of the package's non-test files and was not started by a test (whose
// own goroutines the test is responsible for).
func isPackageGoroutine(g string) bool {
	lines := strings.Split(g, "\n")
	ours := false
	for i, l := range lines {
		if !strings.HasPrefix(l, "\t") {
			continue
		}
		file, _, _ := strings.Cut(strings.TrimSpace(l), ":")
		if i > 0 && strings.HasPrefix(lines[i-1], "created by ") {
			if strings.HasPrefix(lines[i-1], "created by testing.") || strings.HasSuffix(file, "_test.go") {
				return false
			}
			continue
		}
		if strings.Contains(file, "/transport/tcp/") && !strings.HasSuffix(file, "_test.go") {
			ours = true
		}
	}
	return ours
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// echoMux serves "echo" (returns the request), "fail" (returns an error
// with the request as text) and the stream "echo" (echoes each message).
func echoMux() *transport.Mux {
	m := transport.NewMux()
	m.Handle("echo", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
	m.Handle("fail", func(ctx context.Context, req []byte) ([]byte, error) {
		return nil, &testError{string(req)}
	})
	m.HandleStream("echo", func(s transport.Stream) error {
		for {
			msg, err := s.ReadMsg()
			if err != nil {
				return nil
			}
			if err := s.WriteMsg(msg); err != nil {
				return err
			}
		}
	})
	return m
}

// blockServer serves "echo" and "block", whose handler reports the time
// left to its deadline (0 if none) on started, waits for its context to
// end, then reports the context's error on observed.
type blockServer struct {
	*Server
	started  chan time.Duration
	observed chan error
}

func startBlockServer(t testing.TB) *blockServer {
	b := &blockServer{started: make(chan time.Duration, 1), observed: make(chan error, 1)}
	mux := transport.NewMux()
	mux.Handle("echo", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
	mux.Handle("block", func(ctx context.Context, req []byte) ([]byte, error) {
		var left time.Duration
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		b.started <- left
		<-ctx.Done()
		b.observed <- ctx.Err()
		return nil, ctx.Err()
	})
	b.Server = startServer(t, "tcp", mux, Options{})
	return b
}

// wantHandlerCancelled waits for a blockServer handler to see its context
// cancelled.
func wantHandlerCancelled(t testing.TB, observed <-chan error) {
	t.Helper()
	select {
	case err := <-observed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler saw %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler context not cancelled")
	}
}

type testError struct{ s string }

func (e *testError) Error() string { return e.s }

// startServer listens on network ("tcp" or "unix") and closes the server
// when the test ends.
func startServer(t testing.TB, network string, mux *transport.Mux, o Options) *Server {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = filepath.Join(shortTempDir(t), "s.sock")
	}
	s, err := Listen(network, address, mux, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// shortTempDir returns a temporary directory with a path short enough for
// a unix socket.
func shortTempDir(t testing.TB) string {
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	d, err := os.MkdirTemp("", "synod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newDialer(t testing.TB, o Options) *Dialer {
	t.Helper()
	d, err := NewDialer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func dial(t testing.TB, d *Dialer, addr string) transport.Conn {
	t.Helper()
	c, err := d.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recvWithin returns the next value from ch, and fails the test with
// failure if none comes within 10 seconds.
func recvWithin[T any](t *testing.T, ch <-chan T, failure string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal(failure)
		var zero T
		return zero
	}
}
