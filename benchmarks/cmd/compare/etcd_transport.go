package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// etcdTransport is a minimal loopback TCP transport for etcd raft: one
// connection per pair of nodes (the lower id dials the higher and
// introduces itself with its id, 8 bytes big-endian), carrying raftpb.Message
// frames in both directions, each a 4-byte big-endian length and the
// message's protobuf encoding.
//
// Messages are marshalled in the Ready loop (the raft package asks for that:
// entries must not change while they are encoded) and appended to the peer's
// pending buffer; one writer goroutine per peer writes everything pending in
// one write, so messages queued while a write was in progress share the
// next syscall. A peer with maxPendingMessages unsent is treated as
// unreachable and further messages to it are dropped, as etcd's rafthttp
// does when its 4096-message buffer is full. One reader goroutine per peer
// passes each frame to Node.Step. A connection is not re-established: a
// broken one ends that link for the rest of the run.
type etcdTransport struct {
	id   uint64
	ln   net.Listener
	node raft.Node // set before connect

	accepted chan struct{} // closed once every lower-id peer has connected

	mu    sync.Mutex
	peers map[uint64]*etcdPeer
	wg    sync.WaitGroup // readers, writers and the accept loop
}

// maxPendingMessages bounds a peer's unsent messages (rafthttp's
// streamBufSize).
const maxPendingMessages = 4096

// etcdPeer is one connection and its outgoing queue.
type etcdPeer struct {
	id     uint64
	conn   net.Conn
	signal chan struct{} // capacity 1: there is something pending

	mu      sync.Mutex
	pending []byte // frames not yet handed to the writer
	count   int    // messages in pending
	spare   []byte // the writer's previous buffer, for reuse
	closed  bool
}

func listenEtcd(id uint64) (*etcdTransport, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &etcdTransport{id: id, ln: ln, peers: map[uint64]*etcdPeer{}, accepted: make(chan struct{})}, nil
}

func (t *etcdTransport) addr() string { return t.ln.Addr().String() }

// connect dials every peer with a higher id and accepts a connection from
// every peer with a lower one, then starts their readers and writers. It
// returns once every link of this node is up.
func (t *etcdTransport) connect(ctx context.Context, addrs map[uint64]string) error {
	lower := 0
	for id := range addrs {
		if id < t.id {
			lower++
		}
	}
	t.wg.Add(1)
	go t.accept(lower)
	var d net.Dialer
	for id, addr := range addrs {
		if id <= t.id {
			continue
		}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		if _, err := conn.Write(binary.BigEndian.AppendUint64(nil, t.id)); err != nil {
			conn.Close()
			return err
		}
		t.addPeer(id, conn)
	}
	select {
	case <-t.accepted:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node %d: waiting for peers to connect: %w", t.id, ctx.Err())
	}
}

// accept takes n connections from lower-id peers, then closes t.accepted.
func (t *etcdTransport) accept(n int) {
	defer t.wg.Done()
	for n > 0 {
		conn, err := t.ln.Accept()
		if err != nil {
			return
		}
		var hello [8]byte
		if _, err := io.ReadFull(conn, hello[:]); err != nil {
			conn.Close()
			continue
		}
		t.addPeer(binary.BigEndian.Uint64(hello[:]), conn)
		n--
	}
	close(t.accepted)
}

func (t *etcdTransport) addPeer(id uint64, conn net.Conn) {
	p := &etcdPeer{id: id, conn: conn, signal: make(chan struct{}, 1)}
	t.mu.Lock()
	t.peers[id] = p
	t.mu.Unlock()
	t.wg.Add(2)
	go t.write(p)
	go t.read(p)
}

// send marshals msgs and queues each for its peer. It is called from the
// Ready loop only.
func (t *etcdTransport) send(msgs []raftpb.Message) {
	for i := range msgs {
		m := &msgs[i]
		t.mu.Lock()
		p := t.peers[m.To]
		t.mu.Unlock()
		if p == nil || !p.enqueue(m) {
			t.node.ReportUnreachable(m.To)
			if m.Type == raftpb.MsgSnap {
				t.node.ReportSnapshot(m.To, raft.SnapshotFailure)
			}
			continue
		}
		if m.Type == raftpb.MsgSnap {
			// The snapshot (of the trivial state machine) is a few bytes and
			// now queued; report it done rather than track its write.
			t.node.ReportSnapshot(m.To, raft.SnapshotFinish)
		}
	}
}

// enqueue appends m's frame to the pending buffer and wakes the writer; it
// reports false if the peer is closed or has maxPendingMessages unsent.
func (p *etcdPeer) enqueue(m *raftpb.Message) bool {
	size := m.Size()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.count >= maxPendingMessages {
		return false
	}
	p.pending = binary.BigEndian.AppendUint32(p.pending, uint32(size))
	start := len(p.pending)
	p.pending = append(p.pending, make([]byte, size)...)
	if _, err := m.MarshalToSizedBuffer(p.pending[start:]); err != nil {
		p.pending = p.pending[:start-4]
		return false
	}
	p.count++
	select {
	case p.signal <- struct{}{}:
	default:
	}
	return true
}

// write sends whatever is pending, one write per wake-up, until the
// connection fails or is closed.
func (t *etcdTransport) write(p *etcdPeer) {
	defer t.wg.Done()
	for range p.signal {
		p.mu.Lock()
		out := p.pending
		p.pending, p.spare, p.count = p.spare[:0], nil, 0
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		if len(out) == 0 {
			continue
		}
		if _, err := p.conn.Write(out); err != nil {
			p.fail()
			return
		}
		p.mu.Lock()
		p.spare = out[:0]
		p.mu.Unlock()
	}
}

// read passes each incoming frame to the node until the connection ends.
func (t *etcdTransport) read(p *etcdPeer) {
	defer t.wg.Done()
	r := bufio.NewReaderSize(p.conn, 64<<10)
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			p.fail()
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n > 64<<20 {
			p.fail()
			return
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			p.fail()
			return
		}
		var m raftpb.Message // Unmarshal copies entry data out of buf
		if err := m.Unmarshal(buf); err != nil {
			p.fail()
			return
		}
		if err := t.node.Step(context.Background(), m); errors.Is(err, raft.ErrStopped) {
			return
		}
	}
}

// fail closes the peer's connection and stops its writer.
func (p *etcdPeer) fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.conn.Close()
	close(p.signal)
}

// close shuts the listener and every connection and waits for the
// goroutines.
func (t *etcdTransport) close() error {
	err := t.ln.Close()
	t.mu.Lock()
	peers := make([]*etcdPeer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	for _, p := range peers {
		p.fail()
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("etcd transport %d: %w", t.id, err)
	}
	return nil
}
