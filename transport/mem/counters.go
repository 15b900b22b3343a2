package mem

// Sent returns the number of messages node addr has sent. See "Counters"
// in the package doc for what counts.
func (n *Network) Sent(addr string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent[addr]
}

// Delivered returns the number of messages delivered to node addr. See
// "Counters" in the package doc for what counts.
func (n *Network) Delivered(addr string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delivered[addr]
}

// DeliveredRoute returns the number of messages delivered on route, to any
// node: requests, their replies, stream opens and stream messages in both
// directions.
func (n *Network) DeliveredRoute(route string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.deliveredR[route]
}

// ResetCounters sets every counter to zero.
func (n *Network) ResetCounters() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.sent)
	clear(n.delivered)
	clear(n.deliveredR)
}

// countSent counts one message sent by addr. Caller holds n.mu.
func (n *Network) countSent(addr string) { n.sent[addr]++ }

// countDelivered counts one message delivered to addr on route. Caller holds
// n.mu.
func (n *Network) countDelivered(addr, route string) {
	n.delivered[addr]++
	n.deliveredR[route]++
}
