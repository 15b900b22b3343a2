package mem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

func TestCallAsync(t *testing.T) {
	n := newNet(t, mem.Options{})
	mux := echoMux()
	started, blocked := make(chan struct{}, 2), make(chan error, 2)
	mux.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		blocked <- ctx.Err()
		return nil, ctx.Err()
	})
	listen(t, n, mux, "b")
	c := dial(t, n, "a", "b")
	ac, ok := c.(transport.AsyncConn)
	if !ok {
		t.Fatal("mem Conn does not implement transport.AsyncConn")
	}
	type result struct {
		reply []byte
		err   error
	}
	res := make(chan result, 1)
	done := func(reply []byte, err error) { res <- result{reply, err} }
	wait := func() result {
		select {
		case r := <-res:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("callback not called")
			return result{}
		}
	}

	req := []byte("hello")
	if _, err := ac.CallAsync("echo", req, time.Second, done); err != nil {
		t.Fatal(err)
	}
	req[0] = 'J' // CallAsync does not retain req
	if r := wait(); r.err != nil || string(r.reply) != "hello" {
		t.Fatalf("echo: %q, %v", r.reply, r.err)
	}

	cancel, err := ac.CallAsync("block", nil, time.Minute, done)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	if r := wait(); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", r.err)
	}
	if err := <-blocked; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v", err)
	}

	if _, err := ac.CallAsync("block", nil, 10*time.Millisecond, done); err != nil {
		t.Fatal(err)
	}
	if r := wait(); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("call past its timeout: %v, want context.DeadlineExceeded", r.err)
	}
}

// TestAsyncHandler serves a route with an AsyncUnaryHandler: it runs on
// the goroutine that delivers the request and its reply never blocks
// there, even when the reply is delayed; a reply from a node killed
// meanwhile is dropped.
func TestAsyncHandler(t *testing.T) {
	clock := clockwork.NewFakeClock()
	n := newNet(t, mem.Options{Clock: clock})
	mux := transport.NewMux()
	returned := make(chan struct{}, 1)
	mux.HandleAsync("echo", func(req []byte, reply func([]byte, error)) {
		reply(req, nil)
		returned <- struct{}{}
	})
	mux.HandleAsync("fail", func(req []byte, reply func([]byte, error)) { reply(nil, errors.New(string(req))) })
	type held struct{ reply func([]byte, error) }
	holds := make(chan held, 1)
	mux.HandleAsync("hold", func(req []byte, reply func([]byte, error)) { holds <- held{reply} })
	listen(t, n, mux, "b")
	c := dial(t, n, "a", "b")
	ctx := t.Context()

	if got, err := c.Call(ctx, "echo", []byte("now")); err != nil || string(got) != "now" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	receive(t, returned, "the handler to return")
	var re *transport.RemoteError
	if _, err := c.Call(ctx, "fail", []byte("nope")); !errors.As(err, &re) || re.Msg != "nope" {
		t.Fatalf("fail: %v, want a RemoteError carrying the handler's error", err)
	}

	n.SetDefaultDelay(time.Second, time.Second)
	type result struct {
		reply []byte
		err   error
	}
	res := make(chan result, 1)
	go func() {
		got, err := c.Call(ctx, "echo", []byte("later"))
		res <- result{got, err}
	}()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the request's delay
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	receive(t, returned, "the handler to return while its reply is delayed")
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the reply's delay
		t.Fatal(err)
	}
	select {
	case r := <-res:
		t.Fatalf("reply arrived before its delay: %q, %v", r.reply, r.err)
	default:
	}
	clock.Advance(time.Second)
	if r := receive(t, res, "the delayed reply"); r.err != nil || string(r.reply) != "later" {
		t.Fatalf("delayed echo: %q, %v", r.reply, r.err)
	}

	n.SetDefaultDelay(0, 0)
	errc := goCall(t, c, "hold")
	h := receive(t, holds, "the held call")
	n.Kill("b")
	if err := receive(t, errc, "the call to a killed node"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("call to a killed node: %v, want ErrUnreachable", err)
	}
	h.reply([]byte("from the dead"), nil) // dropped; must not reach anyone
}
