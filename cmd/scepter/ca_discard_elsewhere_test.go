package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// TestCARolloverDiscardOfACopy: a node that still holds a copy of a next
// CA discarded elsewhere (here, the same data directory given its copy
// back) removes it with --discard, told that the store had discarded it
// already; the store keeps the one discard and records nothing. Also once
// the copy's switch time has passed: no node switched to a discarded CA.
func TestCARolloverDiscardOfACopy(t *testing.T) {
	for _, afterSwitch := range []bool{false, true} {
		t.Run(fmt.Sprintf("after_its_switch_time=%v", afterSwitch), func(t *testing.T) {
			testCARolloverDiscardOfACopy(t, afterSwitch)
		})
	}
}

func testCARolloverDiscardOfACopy(t *testing.T, afterSwitch bool) {
	ctx := context.Background()
	dir, a := caDataDir(t, ca.InitOptions{})
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	sync := &cashare.Syncer{Store: st, Authority: a, Clock: pki.SystemClock{}, Node: "node", Log: slog.New(slog.DiscardHandler)}
	err = sync.Sync(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCA(t, nil, dir, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	nextDir := filepath.Join(dir, "ca", ca.NextDir)
	copyOf := filepath.Join(t.TempDir(), "next")
	if o, err := exec.Command("cp", "-a", nextDir, copyOf).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	if out, _, err := runCA(t, nil, dir, "rollover", "--discard"); err != nil || !strings.Contains(out, "from the store and") {
		t.Fatalf("--discard: %v\n%s", err, out)
	}
	if o, err := exec.Command("cp", "-a", copyOf, nextDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	if afterSwitch {
		past := pki.SystemClock{}.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + "\n"
		if err := os.WriteFile(filepath.Join(nextDir, ca.SwitchAtFile), []byte(past), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err := runCA(t, nil, dir, "rollover", "--discard")
	if err != nil || !strings.Contains(out, "discarded from the store before, on another node") || !strings.Contains(errOut, "the store keeps the discard") {
		t.Fatalf("--discard of the copy: %v\n%s\n%s", err, out, errOut)
	}
	if _, err := os.Stat(nextDir); !os.IsNotExist(err) {
		t.Errorf("the copy was left: %v", err)
	}
	st, err = sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gens, _ := st.CAGenerations(ctx)
	ds, _ := st.DiscardedCAGenerations(ctx)
	if len(gens) != 1 || len(ds) != 1 {
		t.Errorf("the store holds %d generations and %d discards, want 1 and 1", len(gens), len(ds))
	}
}
