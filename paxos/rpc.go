package paxos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/synod-go/synod/transport"
)

// Routes under which Register serves a node's roles on a transport.Mux.
const (
	RoutePrepare   = "paxos/prepare"
	RouteAccept    = "paxos/accept"
	RouteHeartbeat = "paxos/heartbeat"
	RouteObserve   = "paxos/observe"
	RoutePropose   = "paxos/propose"
	RouteProbe     = "paxos/probe"
)

type wireMsg interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// Register serves p's acceptor and proposer on mux, for remote peers that
// reach p through a transport (see DialTransport).
func Register(mux *transport.Mux, p *Paxos) {
	mux.Handle(RoutePrepare, unary(func(ctx context.Context, req *Prepare) (*Promise, error) {
		return p.acceptor.Prepare(ctx, req)
	}))
	// Accepts, the hot path, are served without a goroutine per call: on
	// the transport's reader when the acceptor's logs are in memory, else
	// answered by the acceptor's writer after its group commit.
	acc := func(data []byte, reply func([]byte, error)) {
		var req Accept
		if err := req.UnmarshalBinary(data); err != nil {
			reply(nil, err)
			return
		}
		p.acceptor.acceptAsync(&req, func(rep *Accepted, err error) {
			if err != nil {
				reply(nil, err)
				return
			}
			reply(rep.MarshalBinary())
		})
	}
	mux.HandleAsync(RouteAccept, acc)
	mux.HandleAsync(RouteHeartbeat, acc)
	mux.Handle(RoutePropose, unary(func(ctx context.Context, req *ProposeRequest) (*ProposeReply, error) {
		if err := p.checkValue(req.Value); err != nil {
			return nil, err
		}
		return p.proposer.handlePropose(ctx, req), nil
	}))
	mux.Handle(RouteProbe, unary(func(ctx context.Context, req *Probe) (*ProbeReply, error) {
		return p.proposer.handleProbe(req), nil
	}))
	mux.HandleStream(RouteObserve, func(s transport.Stream) error {
		msg, err := s.ReadMsg()
		if err != nil {
			return err
		}
		var req ObserveRequest
		if err := req.UnmarshalBinary(msg); err != nil {
			return fmt.Errorf("paxos: observe request: %w", err)
		}
		obs, err := p.acceptor.Observe(s.Context(), &req)
		if err != nil {
			return err
		}
		defer obs.Close()
		var buf []byte
		for {
			ev, err := obs.Recv()
			if err != nil {
				return err
			}
			buf, err = ev.AppendBinary(buf[:0])
			if err != nil {
				return err
			}
			if err := s.WriteMsg(buf); err != nil {
				return err
			}
		}
	})
}

// unary adapts a typed handler to a transport.UnaryHandler.
func unary[Req any, Rep wireMsg, PReq interface {
	*Req
	wireMsg
}](h func(context.Context, *Req) (Rep, error)) transport.UnaryHandler {
	return func(ctx context.Context, data []byte) ([]byte, error) {
		req := PReq(new(Req))
		if err := req.UnmarshalBinary(data); err != nil {
			return nil, err
		}
		rep, err := h(ctx, (*Req)(req))
		if err != nil {
			return nil, err
		}
		return rep.MarshalBinary()
	}
}

func call[Rep any, PRep interface {
	*Rep
	wireMsg
}](ctx context.Context, c transport.Conn, route string, req wireMsg) (*Rep, error) {
	data, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out, err := c.Call(ctx, route, data)
	if err != nil {
		return nil, err
	}
	rep := PRep(new(Rep))
	if err := rep.UnmarshalBinary(out); err != nil {
		return nil, fmt.Errorf("paxos: %s reply: %w", route, err)
	}
	return (*Rep)(rep), nil
}

// remote is a peer reached through a transport.Conn; it implements
// AcceptorClient, HeartbeatClient, ObserverClient and ProposerClient.
type remote struct{ conn transport.Conn }

func (r remote) Prepare(ctx context.Context, req *Prepare) (*Promise, error) {
	return call[Promise](ctx, r.conn, RoutePrepare, req)
}

func (r remote) Accept(ctx context.Context, req *Accept) (*Accepted, error) {
	return call[Accepted](ctx, r.conn, RouteAccept, req)
}

// asyncRemote is a remote whose Conn can start calls without blocking.
type asyncRemote struct {
	remote
	async transport.AsyncConn
}

// AcceptAsync implements AsyncAcceptorClient.
func (r asyncRemote) AcceptAsync(req *Accept, timeout time.Duration, done func(*Accepted, error)) (func(), error) {
	data, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return r.async.CallAsync(RouteAccept, data, timeout, func(out []byte, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		rep := new(Accepted)
		if err := rep.UnmarshalBinary(out); err != nil {
			done(nil, fmt.Errorf("paxos: %s reply: %w", RouteAccept, err))
			return
		}
		done(rep, nil)
	})
}

func (r remote) Heartbeat(ctx context.Context, req *Accept) (*Accepted, error) {
	return call[Accepted](ctx, r.conn, RouteHeartbeat, req)
}

func (r remote) Propose(ctx context.Context, req *ProposeRequest) (*ProposeReply, error) {
	return call[ProposeReply](ctx, r.conn, RoutePropose, req)
}

func (r remote) Probe(ctx context.Context, req *Probe) (*ProbeReply, error) {
	return call[ProbeReply](ctx, r.conn, RouteProbe, req)
}

func (r remote) Observe(ctx context.Context, req *ObserveRequest) (ObserveStream, error) {
	s, err := r.conn.NewStream(ctx, RouteObserve)
	if err != nil {
		return nil, err
	}
	data, err := req.MarshalBinary()
	if err == nil {
		err = s.WriteMsg(data)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return remoteObserve{s}, nil
}

type remoteObserve struct{ s transport.Stream }

func (r remoteObserve) Recv() (*ObserveEvent, error) {
	msg, err := r.s.ReadMsg()
	if err != nil {
		return nil, err
	}
	ev := new(ObserveEvent)
	if err := ev.UnmarshalBinary(msg); err != nil {
		return nil, fmt.Errorf("paxos: observe event: %w", err)
	}
	return ev, nil
}

func (r remoteObserve) Close() error { return r.s.Close() }

// DialTransport sets c's three dialers to reach members through d; the
// members' nodes must be served with Register. One Conn is dialed per
// member address and shared by the three roles.
func (c *Config) DialTransport(d transport.Dialer) {
	var mu sync.Mutex
	conns := make(map[string]transport.Conn)
	dial := func(m Member) (remote, error) {
		mu.Lock()
		defer mu.Unlock()
		if conn, ok := conns[m.Addr]; ok {
			return remote{conn}, nil
		}
		conn, err := d.Dial(context.Background(), m.Addr)
		if err != nil {
			return remote{}, err
		}
		conns[m.Addr] = conn
		return remote{conn}, nil
	}
	c.AcceptorDialer = func(m Member) (AcceptorClient, error) {
		r, err := dial(m)
		if err != nil {
			return nil, err
		}
		if a, ok := r.conn.(transport.AsyncConn); ok {
			return asyncRemote{r, a}, nil
		}
		return r, nil
	}
	c.ObserverDialer = func(m Member) (ObserverClient, error) { return dial(m) }
	c.ProposerDialer = func(m Member) (ProposerClient, error) { return dial(m) }
}
