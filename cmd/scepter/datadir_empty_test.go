package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// r86 D8: an empty --data-dir (or data_dir = "" in --config) is refused
// by every command that takes one, exit 2, as serve refused it, saying to
// pass the server's or leave the flag out. Before, 'certs list' said "no
// scepter database in : run 'scepter serve --data-dir' first", quoting
// an empty name, a command that is refused in turn, and 'ca show' "no CA
// in the data directory (ca)", both exit 1.
func TestEmptyDataDirRefusedByEveryCommand(t *testing.T) {
	t.Chdir(t.TempDir()) // nothing may be made in the working directory
	config := filepath.Join(t.TempDir(), "empty.toml")
	writeTestFile(t, config, "data_dir = \"\"\n")
	for _, words := range flagCommands() {
		var set *flag.FlagSet
		e := env{stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false },
			probeFlags: func(fs *flag.FlagSet) { set = fs }}
		if err := run(context.Background(), e, words); !errors.Is(err, errProbed) {
			t.Fatalf("%q: %v", words, err)
		}
		if set.Lookup("data-dir") == nil {
			continue
		}
		advice := "pass the --data-dir the server uses, or leave the flag out for the default (./scepter-data)"
		if set.Name() == "serve" {
			advice = "give the directory scepter keeps its CA and store in"
		}
		// Named as given: the flag, or the file's key (r104 D4).
		for _, given := range []struct {
			args []string
			name string
		}{
			{[]string{"--data-dir="}, "--data-dir"},
			{[]string{"--data-dir", " "}, "--data-dir"},
			{[]string{"--config", config}, "config " + config + ": data_dir"},
		} {
			what := strings.Join(append(append([]string{}, words...), given.args...), " ")
			e, out, errb := testEnv(nil)
			err := run(context.Background(), e, append(append([]string{}, words...), given.args...))
			wantUsageError(t, what, err, out.String()+errb.String(), []string{given.name + " is empty", advice})
		}
	}
}
