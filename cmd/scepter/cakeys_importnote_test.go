package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
)

// import-keys ends by naming what it imported and when a running server
// takes it up: the CA itself on a node that had none (start the server),
// a renewed SCEP RA, a next issuing CA. It used to say, after every
// import, that a running server picks the CA's next generation up, also
// when the export held none.
func TestImportKeysSaysWhatItImported(t *testing.T) {
	dirA, _ := caDataDir(t, ca.InitOptions{})
	dirB := filepath.Join(t.TempDir(), "b")
	vars := map[string]string{keysPassphraseEnv: "correct horse battery"}
	n := 0
	carry := func() string {
		t.Helper()
		n++
		export := filepath.Join(t.TempDir(), "keys.pem")
		if _, errOut, err := runCA(t, vars, dirA, "export-keys", "--out", export); err != nil {
			t.Fatalf("export-keys: %v\n%s", err, errOut)
		}
		out, errOut, err := runCA(t, vars, dirB, "import-keys", "--in", export)
		if err != nil {
			t.Fatalf("import-keys: %v\n%s", err, errOut)
		}
		return out
	}
	check := func(what, out string, want, not []string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: the output lacks %q:\n%s", what, w, out)
			}
		}
		for _, w := range not {
			if strings.Contains(out, w) {
				t.Errorf("%s: the output says %q:\n%s", what, w, out)
			}
		}
	}
	check("first join", carry(), []string{"This node had no CA: it now holds the CA itself. Start the server on it: scepter serve --data-dir " + shellQuote(dirB)},
		[]string{"next generation", "next issuing CA", "reload", "renewed"})

	if _, _, err := runCA(t, nil, dirA, "renew-ra", "--validity", "26280h"); err != nil {
		t.Fatal(err)
	}
	check("renewed RA", carry(), []string{"A renewed SCEP RA: a server running on " + dirB + " serves it in GetCACert and decrypts with it from its next CA reload (--ca-reload-interval)",
		filepath.Join("DATA", "ca", "retired-ra"), "when started: scepter serve --data-dir"},
		[]string{"next generation", "next issuing CA", "had no CA"})

	if _, _, err := runCA(t, nil, dirA, "rollover", "--switch-in", "48h"); err != nil {
		t.Fatal(err)
	}
	check("next CA", carry(), []string{"A next issuing CA: a server running on " + dirB + " announces it (GetNextCACert) from its next CA reload", "switches to it at its switch time"},
		[]string{"renewed", "had no CA"})
}

// The cases no command above reaches cheaply: a join that brings a next
// CA, a switch this node missed, other files only.
func TestImportedNote(t *testing.T) {
	for _, tc := range []struct {
		name    string
		joined  bool
		written []string
		want    string
	}{
		{"join with a next CA", true, []string{"ca/root.crt", "ca/next/issuing.crt"}, "it now holds the CA itself and its next issuing CA"},
		{"missed switch", false, []string{"ca/previous/ab/issuing.crt", "ca/issuing.crt", "ca/ra.crt"}, "The current issuing CA, whose switch this node missed: a server running on D issues with it from its next CA reload"},
		{"retired RA only", false, []string{"ca/retired-ra/1f/ra.crt"}, "Other files of the CA (retired RAs, earlier issuing CAs): a server running on D uses them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := importedNote("D", tc.joined, tc.written)
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to say %q", got, tc.want)
			}
			if tc.name == "missed switch" && strings.Contains(got, "renewed") {
				t.Errorf("a switch taken for a renewed RA: %q", got)
			}
		})
	}
}
