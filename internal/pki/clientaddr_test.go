package pki

import "testing"

func TestClientHost(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"192.0.2.1:5000", "192.0.2.1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[fe80::1%eth0]:0", "fe80::1%eth0"},
		{"192.0.2.1", "192.0.2.1"},     // a forwarded client, no port
		{"2001:db8::1", "2001:db8::1"}, // a bare IPv6 address
		{"", ""},
	} {
		if got := ClientHost(tt.remote); got != tt.want {
			t.Errorf("ClientHost(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}
