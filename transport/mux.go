package transport

import "sync"

// Mux routes incoming calls and streams to handlers by route name. A server
// side of any transport (transport/mem, transport/tcp) serves one Mux.
// Handlers may be registered at any time; the Mux is safe for concurrent use.
type Mux struct {
	mu      sync.RWMutex
	unary   map[string]UnaryHandler
	streams map[string]StreamHandler
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{unary: make(map[string]UnaryHandler), streams: make(map[string]StreamHandler)}
}

// Handle registers h for unary calls on route, replacing any previous one.
func (m *Mux) Handle(route string, h UnaryHandler) {
	m.mu.Lock()
	m.unary[route] = h
	m.mu.Unlock()
}

// HandleStream registers h for streams on route, replacing any previous one.
func (m *Mux) HandleStream(route string, h StreamHandler) {
	m.mu.Lock()
	m.streams[route] = h
	m.mu.Unlock()
}

// Unary returns the handler for route, if any.
func (m *Mux) Unary(route string) (UnaryHandler, bool) {
	m.mu.RLock()
	h, ok := m.unary[route]
	m.mu.RUnlock()
	return h, ok
}

// Stream returns the stream handler for route, if any.
func (m *Mux) Stream(route string) (StreamHandler, bool) {
	m.mu.RLock()
	h, ok := m.streams[route]
	m.mu.RUnlock()
	return h, ok
}
