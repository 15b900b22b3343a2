package transport

import (
	"context"
	"sync"
)

// Mux routes incoming calls and streams to handlers by route name. A server
// side of any transport (transport/mem, transport/tcp) serves one Mux.
// Handlers may be registered at any time; the Mux is safe for concurrent use.
type Mux struct {
	mu      sync.RWMutex
	unary   map[string]unaryEntry
	streams map[string]StreamHandler
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{unary: make(map[string]unaryEntry), streams: make(map[string]StreamHandler)}
}

// unaryEntry is a unary route's handler: h always, and async as well when
// it was registered with HandleAsync (h is then its adapter).
type unaryEntry struct {
	h     UnaryHandler
	async AsyncUnaryHandler
}

// Handle registers h for unary calls on route, replacing any previous one.
func (m *Mux) Handle(route string, h UnaryHandler) {
	m.mu.Lock()
	m.unary[route] = unaryEntry{h: h}
	m.mu.Unlock()
}

// HandleAsync registers h for unary calls on route, replacing any previous
// handler. Transports that support it (transport/tcp and transport/mem do)
// call h on the goroutine that read the request; others call it through a
// UnaryHandler that waits for the reply (see AsyncUnaryHandler).
func (m *Mux) HandleAsync(route string, h AsyncUnaryHandler) {
	m.mu.Lock()
	m.unary[route] = unaryEntry{h: syncAdapter(h), async: h}
	m.mu.Unlock()
}

// syncAdapter runs an AsyncUnaryHandler as a UnaryHandler.
func syncAdapter(h AsyncUnaryHandler) UnaryHandler {
	type result struct {
		rep []byte
		err error
	}
	return func(ctx context.Context, req []byte) ([]byte, error) {
		ch := make(chan result, 1)
		h(req, func(rep []byte, err error) { ch <- result{rep, err} })
		select {
		case r := <-ch:
			return r.rep, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// HandleStream registers h for streams on route, replacing any previous one.
func (m *Mux) HandleStream(route string, h StreamHandler) {
	m.mu.Lock()
	m.streams[route] = h
	m.mu.Unlock()
}

// Unary returns the handler for route, if any: for a route registered with
// HandleAsync, one that calls the AsyncUnaryHandler and waits for its reply.
func (m *Mux) Unary(route string) (UnaryHandler, bool) {
	m.mu.RLock()
	e, ok := m.unary[route]
	m.mu.RUnlock()
	return e.h, ok
}

// UnaryAsync returns the handlers for route, if any: h as Unary returns
// it, and async, not nil if the route was registered with HandleAsync. A
// transport that can call an AsyncUnaryHandler from its reader uses async
// when it is there, and h otherwise.
func (m *Mux) UnaryAsync(route string) (h UnaryHandler, async AsyncUnaryHandler, ok bool) {
	m.mu.RLock()
	e, ok := m.unary[route]
	m.mu.RUnlock()
	return e.h, e.async, ok
}

// Stream returns the stream handler for route, if any.
func (m *Mux) Stream(route string) (StreamHandler, bool) {
	m.mu.RLock()
	h, ok := m.streams[route]
	m.mu.RUnlock()
	return h, ok
}
