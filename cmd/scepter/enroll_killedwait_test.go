package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// While `enroll --max-wait` or `est enroll --max-wait` waits for a request
// held for approval, the marker beside its kept key says "held for
// approval: yes" from the first answer that held it. A run killed during
// that wait (SIGKILL: a reboot, an OOM kill), which writes nothing more,
// leaves that marker, and the next run says it takes up the key of a
// request held for approval. Before (r125 D4) the marker said "no" until
// the wait ended, and the next run after a kill called the hold a lost
// answer.
func TestKilledEnrollWaitLeavesAHeldMarker(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	for _, tt := range []struct {
		name string
		args func(d string) []string
	}{
		{"scep enroll", func(d string) []string {
			return []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--ca-fingerprint", s.fingerprint, "--subject", "CN=killed-scep",
				"--key-type", "p256", "--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}
		}},
		{"est enroll", func(d string) []string {
			return []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=killed-est",
				"--out", filepath.Join(d, "cert.pem"), "--key-out", filepath.Join(d, "key.pem")}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			keyOut := filepath.Join(d, "key.pem")
			marker := keyOut + heldMarkerSuffix
			vars := map[string]string{"SCEPTER_EST_PASSWORD": "test"}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			e, _, errb := testEnv(vars)
			go func() {
				done <- run(ctx, e, append(tt.args(d), "--max-wait", "1h", "--poll-interval", "1s"))
			}()
			// What a kill during the wait leaves: the key and its marker
			// as they are while the run waits.
			var markerText, keyText []byte
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				markerText, _ = os.ReadFile(marker)
				if strings.Contains(string(markerText), heldMarkerHoldLine+"yes") {
					break
				}
				if time.Now().After(deadline) {
					stop()
					t.Fatalf("30 s into the wait the marker says:\n%s\n(held requests %v; the run: %v)\n%s", markerText, s.pending(t), <-done, errb)
				}
			}
			if len(s.pending(t)) == 0 {
				t.Error("the marker says held before the server held the request")
			}
			keyText, err := os.ReadFile(keyOut)
			if err != nil {
				t.Fatal(err)
			}
			stop()
			<-done
			// Killed, the run wrote nothing after the wait began.
			if err := os.WriteFile(marker, markerText, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keyOut, keyText, 0o600); err != nil {
				t.Fatal(err)
			}
			e, _, errb = testEnv(vars)
			if err := run(context.Background(), e, tt.args(d)); err == nil {
				t.Fatal("the next run got a certificate for a request nobody approved")
			}
			want := "using the key in " + keyOut + ", kept by an earlier run of this request, which was held for approval: asking with it again"
			if !strings.Contains(errb.String(), want) {
				t.Errorf("the next run said:\n%s\nwant %q", errb, want)
			}
		})
	}
}
