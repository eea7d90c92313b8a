package main

import (
	"context"
	"strings"
	"testing"
)

// The limits' flags are checked before the server starts, as usage errors.
func TestServeLimitFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-conns", "0"}, "--max-conns"},
		{[]string{"--max-inflight", "0"}, "--max-inflight"},
		{[]string{"--max-queued", "-1"}, "--max-queued"},
		{[]string{"--queue-wait", "-1s"}, "--queue-wait"},
		{[]string{"--queue-wait", "1m"}, "--queue-wait"},
		{[]string{"--rate-limit", "-1"}, "--rate-limit"},
		{[]string{"--rate-burst", "0"}, "--rate-burst"},
		{[]string{"--read-header-timeout", "0s"}, "--read-header-timeout"},
		{[]string{"--read-header-timeout", "1m"}, "--read-header-timeout"},
		{[]string{"--trusted-proxy", "proxy.example"}, "--trusted-proxy"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			e, _, _ := testEnv(nil)
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--est-listen", "off"}, tc.args...)
			err := run(context.Background(), e, args)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error naming %s", err, exitCode(err), tc.want)
			}
		})
	}
	// The defaults and a disabled rate limit are valid.
	e, _, _ := testEnv(nil)
	fs, f := newServeFlags(e)
	if err := parseFlags(fs, e, []string{"--rate-limit", "0", "--rate-burst", "0", "--trusted-proxy", "10.0.0.0/8,::1"}, 0, f.sections()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.guard(nil, nil); err != nil {
		t.Fatalf("rate limit off: %v", err)
	}
	if f.maxConns != 1024 || f.maxInflight != 64 || f.maxQueued != 1024 || f.queueWait.Seconds() != 5 || f.readHeaderTimeout.Seconds() != 10 {
		t.Errorf("defaults: %d conns, %d in flight, %d waiting for %v, %v", f.maxConns, f.maxInflight, f.maxQueued, f.queueWait, f.readHeaderTimeout)
	}
	e, _, _ = testEnv(nil)
	fs, f = newServeFlags(e)
	if err := parseFlags(fs, e, nil, 0, f.sections()); err != nil {
		t.Fatal(err)
	}
	if f.rateLimit != 20 || f.rateBurst != 250 {
		t.Errorf("rate defaults %v/%d", f.rateLimit, f.rateBurst)
	}
}
