package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// import-keys into a node that still holds a next CA discarded on another
// node, of an export made there after a new rollover, says that this
// node's copy is the discarded CA and to run 'ca rollover --discard' here
// first (r93 D2); it said the export was not a later state of this node's
// CA and to move DATA/ca aside, which was neither the cause nor the cure.
// After the discard here, the same import succeeds.
func TestImportKeysOverADiscardedNextCA(t *testing.T) {
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
	discardedID, _, _, err := ca.NextOnDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Node B's copy of the next CA: this data directory plays node B once
	// it is put back (the store is the one both share).
	nextDir := filepath.Join(dir, "ca", ca.NextDir)
	copyOf := filepath.Join(t.TempDir(), "next")
	if o, err := exec.Command("cp", "-a", nextDir, copyOf).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}
	// Node A discards it, rolls over again, and exports.
	if out, _, err := runCA(t, nil, dir, "rollover", "--discard"); err != nil {
		t.Fatalf("--discard: %v\n%s", err, out)
	}
	if _, _, err := runCA(t, nil, dir, "rollover", "--switch-in", "72h"); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{keysPassphraseEnv: "correct horse battery"}
	export := filepath.Join(t.TempDir(), "keys.pem")
	if _, errOut, err := runCA(t, vars, dir, "export-keys", "--out", export); err != nil {
		t.Fatalf("export-keys: %v\n%s", err, errOut)
	}
	// Node B: its discarded copy in place of node A's new next CA.
	if err := os.RemoveAll(nextDir); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command("cp", "-a", copyOf, nextDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, o)
	}

	out, errOut, err := runCA(t, vars, dir, "import-keys", "--in", export)
	if err == nil {
		t.Fatalf("import-keys over a discarded next CA: accepted\n%s%s", out, errOut)
	}
	for _, want := range []string{nextDir, discardedID, "records as discarded", "nothing was imported",
		"run 'scepter ca rollover --discard' on this node first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("import-keys: %v\nwant it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "move "+filepath.Join(dir, "ca")+" aside") {
		t.Errorf("import-keys still says to move the CA aside: %v", err)
	}
	if id, _, _, _ := ca.NextOnDisk(dir); id != discardedID {
		t.Errorf("the refused import changed %s", nextDir)
	}

	// The cure it names works.
	if out, _, err := runCA(t, nil, dir, "rollover", "--discard"); err != nil {
		t.Fatalf("--discard of the copy: %v\n%s", err, out)
	}
	if out, errOut, err := runCA(t, vars, dir, "import-keys", "--in", export); err != nil {
		t.Fatalf("import-keys after the discard: %v\n%s%s", err, out, errOut)
	}
	if id, _, _, _ := ca.NextOnDisk(dir); id == "" || id == discardedID {
		t.Errorf("after the import the next CA is %q, want the export's", id)
	}
}
