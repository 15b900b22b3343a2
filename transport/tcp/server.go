package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/synod-go/synod/transport"
)

// Server serves a transport.Mux on a listener: each accepted connection
// carries many concurrent calls and streams, each run by its handler on its
// own goroutine (bounded by Options.MaxConcurrentCalls and
// MaxConcurrentStreams).
type Server struct {
	opts      Options
	tlsConfig *tls.Config // server side of opts.TLS, nil without TLS
	mux       *transport.Mux
	ln        net.Listener
	addr      string

	ctx    context.Context // cancelled by Close; stops the accept loop and handshakes
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, connections, handlers

	callSem   chan struct{} // one token per running unary handler
	streamSem chan struct{} // one token per running stream handler

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted connections (raw), handshaking or serving
	closed bool
}

// Listen listens on network ("tcp", "tcp4", "tcp6" or "unix") at address
// and serves mux there until Close. For "tcp", a port of 0 picks a free
// port; Addr tells which.
func Listen(network, address string, mux *transport.Mux, opts Options) (*Server, error) {
	if _, err := opts.withDefaults(); err != nil {
		return nil, err
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	s, err := Serve(ln, mux, opts)
	if err != nil {
		ln.Close()
	}
	return s, err
}

// ListenAddr is Listen for an address in the form a Dialer takes (see
// ParseAddr), such as "127.0.0.1:7000" or "unix:///run/synod.sock".
func ListenAddr(addr string, mux *transport.Mux, opts Options) (*Server, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	return Listen(network, address, mux, opts)
}

// Serve serves mux on ln until Close, which also closes ln. It returns
// at once; connections are accepted on a goroutine of the Server.
func Serve(ln net.Listener, mux *transport.Mux, opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if mux == nil {
		return nil, errors.New("tcp: nil Mux")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      o,
		mux:       mux,
		ln:        ln,
		addr:      FormatAddr(ln.Addr().Network(), ln.Addr().String()),
		ctx:       ctx,
		cancel:    cancel,
		callSem:   make(chan struct{}, o.MaxConcurrentCalls),
		streamSem: make(chan struct{}, o.MaxConcurrentStreams),
		conns:     make(map[net.Conn]struct{}),
	}
	if o.TLS != nil {
		s.tlsConfig = o.TLS.Clone()
		s.tlsConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the address to dial to reach the server, in the form
// Dialer.Dial takes.
func (s *Server) Addr() string { return s.addr }

// Close stops accepting, closes every connection (calls in flight fail at
// their callers with ErrUnreachable, never with their handler's error),
// cancels the contexts of running handlers, and waits for them and for
// every goroutine of the Server to return. Handlers must honour their
// context for Close to return promptly.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	s.cancel()
	for nc := range conns {
		nc.Close()
	}
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.opts.Logger.Error("tcp: accept", "err", err, "retry_in", delay)
			select {
			case <-s.opts.Clock.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			nc.Close()
		}()
	}
}

// serveConn runs one accepted connection: TLS handshake and preamble under
// a deadline, then the frame loop until the connection dies. It returns when
// the connection is closed; the connection's handlers may still be running.
func (s *Server) serveConn(raw net.Conn) {
	log := s.opts.Logger.With("remote", remoteName(raw))
	nc := raw
	if err := nc.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout)); err != nil {
		return
	}
	if s.tlsConfig != nil {
		tc := tls.Server(nc, s.tlsConfig)
		if err := tc.HandshakeContext(s.ctx); err != nil {
			log.Warn("tcp: rejected connection: TLS handshake failed", "err", err)
			return
		}
		nc = tc
	}
	sc := newServerConn(s, nc)
	sc.serve()
}
