package paxos

// SetAcceptorFault installs f to be asked at each stage of every Prepare
// and Accept that p's acceptor handles ("received": nothing persisted yet;
// "persisted": on disk, no reply sent). An error fails the request there
// without a reply, as a crash at that point would. Nil removes it.
func SetAcceptorFault(p *Paxos, f func(stage string) error) {
	if f == nil {
		p.acceptor.fault.Store(nil)
		return
	}
	p.acceptor.fault.Store(&f)
}
