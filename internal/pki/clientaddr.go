package pki

import (
	"net"
	"net/netip"
)

// ClientGroup is the address a client's requests count against in every
// per-client limit (rate limit, failure throttle, NDES lockout): an IPv4
// address as it is (an IPv4-mapped IPv6 address as IPv4), an IPv6 address
// as its /64, zone dropped. A host usually holds a whole /64, so counted
// per address it would have 2^64 fresh budgets.
func ClientGroup(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// ClientHost is the host part of a client's address as net/http gives it
// (RemoteAddr: "192.0.2.1:5000", "[2001:db8::1]:443"), or the address as
// it is when it has no port (a trusted proxy's forwarded client).
func ClientHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
