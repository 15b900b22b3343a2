package tcp

import (
	"fmt"
	"net"
	"strings"
)

// ParseAddr splits a Synod transport address into a network and an address
// for package net:
//
//	"host:port", "tcp://host:port"  →  "tcp", "host:port"
//	"unix:///run/synod.sock"        →  "unix", "/run/synod.sock"
//	"unix://rel/path.sock"          →  "unix", "rel/path.sock"
//	"unix:path.sock"                →  "unix", "path.sock"
func ParseAddr(addr string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		network, address = "unix", strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "unix:"):
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "tcp://"):
		network, address = "tcp", strings.TrimPrefix(addr, "tcp://")
	default:
		network, address = "tcp", addr
	}
	if address == "" {
		return "", "", fmt.Errorf("tcp: empty address in %q", addr)
	}
	if network == "tcp" {
		if _, _, err := net.SplitHostPort(address); err != nil {
			return "", "", fmt.Errorf("tcp: bad address %q: %w", addr, err)
		}
	}
	return network, address, nil
}

// FormatAddr is the inverse of ParseAddr: it returns the address string a
// Dialer accepts for a listener on network ("tcp", "tcp4", "tcp6" or
// "unix") at address.
func FormatAddr(network, address string) string {
	if network == "unix" {
		return "unix://" + address
	}
	return address
}
