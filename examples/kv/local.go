package main

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/synod-go/synod/transport"
)

// localDialer is a transport.Dialer that reaches this process's own Mux
// without a socket: the HTTP handlers' kvstore.Client calls its node's
// kvstore.Server through it. Unary calls only; every address is the Mux.
type localDialer struct{ mux *transport.Mux }

func (d localDialer) Dial(ctx context.Context, addr string) (transport.Conn, error) {
	return &localConn{mux: d.mux}, nil
}

type localConn struct {
	mux    *transport.Mux
	closed atomic.Bool
}

// Call runs the handler for route on the calling goroutine, under ctx, with
// a copy of req (the handler owns it).
func (c *localConn) Call(ctx context.Context, route string, req []byte) ([]byte, error) {
	if c.closed.Load() {
		return nil, transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, ok := c.mux.Unary(route)
	if !ok {
		return nil, fmt.Errorf("%w: %s", transport.ErrUnknownRoute, route)
	}
	reply, err := h(ctx, bytes.Clone(req))
	if err != nil {
		return nil, &transport.RemoteError{Route: route, Msg: err.Error()}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, transport.ErrClosed
	}
	return reply, nil
}

func (c *localConn) NewStream(ctx context.Context, route string) (transport.Stream, error) {
	return nil, fmt.Errorf("%w: %s (a local connection carries unary calls only)", transport.ErrUnknownRoute, route)
}

func (c *localConn) Close() error {
	c.closed.Store(true)
	return nil
}
