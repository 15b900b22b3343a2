// Package paxostest runs clusters of paxos nodes on an in-process network
// (transport/mem) for tests: start, stop, restart and partition nodes, wait
// for slots to be decided, and check that no slot ever has two different
// chosen values. It is for tests only; no non-test code imports it.
package paxostest
