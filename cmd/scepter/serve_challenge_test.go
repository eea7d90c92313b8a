package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// On a shared store a generated static challenge is the generating node's
// alone (a node joining the store's CA generates none): its banner and log
// say so, and that every node needs the same --challenge. A node with its
// own store, or a challenge the operator gave, gets no such note.
func TestChallengeBanner(t *testing.T) {
	const (
		file   = "/data/challenge.txt"
		scope  = "static, valid at profile default only"
		shared = "on this node only: every node on this store needs the same --challenge"
	)
	tests := []struct {
		name        string
		state       challengeState
		wantLine    []string // parts of the banner line; nil for no line
		notInLine   []string
		wantWarning string // a part of the warning; "" for none
	}{
		{"generated now, own store", challengeState{challenge: "s3cret", generated: file, created: true, scope: scope},
			[]string{"Challenge password:  s3cret (generated, saved in " + file + "; " + scope + ")"}, []string{shared}, ""},
		{"generated now, shared store", challengeState{challenge: "s3cret", generated: file, created: true, scope: scope, sharedStore: true},
			[]string{"s3cret", scope, shared}, nil, "holds on this node only"},
		{"generated now, shared store, journal", challengeState{challenge: "s3cret", generated: file, created: true, scope: scope, sharedStore: true, toJournal: true},
			[]string{"not shown", shared}, []string{"s3cret"}, "every node needs the same --challenge"},
		{"generated before, shared store", challengeState{challenge: "s3cret", generated: file, scope: scope, sharedStore: true},
			[]string{"in " + file, shared}, []string{"s3cret"}, "holds on this node only"},
		{"generated before, own store", challengeState{challenge: "s3cret", generated: file, scope: scope},
			[]string{"in " + file + " (" + scope + ")"}, []string{shared}, ""},
		{"given by the operator, shared store", challengeState{challenge: "s3cret", scope: scope, sharedStore: true}, nil, nil, ""},
		{"accepted nowhere, shared store", challengeState{challenge: "s3cret", generated: file, scope: "static, but accepted nowhere: …", sharedStore: true},
			[]string{"accepted nowhere"}, []string{shared}, ""},
		{"joined the store's CA", challengeState{sharedStore: true}, []string{"none static (this node joined the CA recorded in the store"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, warning := challengeBanner(tt.state)
			if tt.wantLine == nil && line != "" {
				t.Errorf("line %q, want none", line)
			}
			for _, part := range tt.wantLine {
				if !strings.Contains(line, part) {
					t.Errorf("line %q does not say %q", line, part)
				}
			}
			for _, part := range tt.notInLine {
				if strings.Contains(line, part) {
					t.Errorf("line %q says %q", line, part)
				}
			}
			if tt.wantWarning == "" && warning != "" || !strings.Contains(warning, tt.wantWarning) {
				t.Errorf("warning %q, want one saying %q", warning, tt.wantWarning)
			}
			if strings.Contains(warning, "s3cret") {
				t.Errorf("the warning holds the secret: %q", warning)
			}
		})
	}
}

// The first node on a PostgreSQL store generates a static challenge that
// no other node will have: its banner and log say so.
func TestGeneratedChallengeOnSharedStore(t *testing.T) {
	url := pgtest.Database(t)
	stdout, stderr, err := serveOnceWith(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--store", url)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "(generated, saved in ") || !strings.Contains(stdout, "on this node only: every node on this store needs the same --challenge") {
		t.Errorf("the banner does not say the generated challenge is this node's only:\n%s", stdout)
	}
	if !strings.Contains(stderr, "the generated static challenge holds on this node only") {
		t.Errorf("the log does not say the generated challenge is this node's only:\n%s", stderr)
	}
}

// A first start whose port is taken makes nothing: no CA, no database, no
// generated challenge, so the next start is the first, and its banner
// shows the challenge it generates. Either listener's port counts.
func TestBusyPortCreatesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, args := range [][]string{
		{"--listen", busy.Addr().String(), "--est-listen", "off"},
		{"--listen", "127.0.0.1:0", "--est-listen", busy.Addr().String()},
	} {
		dir := t.TempDir()
		e, _, _ := testEnv(nil)
		err := run(context.Background(), e, append([]string{"serve", "--data-dir", dir}, args...))
		if err == nil || !strings.Contains(err.Error(), "listen") {
			t.Fatalf("serve %v: %v, want the listen refused", args, err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range entries {
			if de.Name() != serveLockFile {
				t.Errorf("serve %v made %s", args, filepath.Join(dir, de.Name()))
			}
		}
	}
}
