package main

import (
	"context"
	"encoding/json"
	"net"
	"runtime/debug"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
)

// A build made as README says is told apart by its commit; a released
// module by its version; one with nothing stamped is "dev".
func TestBuildVersion(t *testing.T) {
	info := func(main string, settings ...string) func() (*debug.BuildInfo, bool) {
		bi := &debug.BuildInfo{Main: debug.Module{Version: main}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return func() (*debug.BuildInfo, bool) { return bi, true }
	}
	for _, tc := range []struct {
		name string
		read func() (*debug.BuildInfo, bool)
		want string
	}{
		{"no build info", func() (*debug.BuildInfo, bool) { return nil, false }, "dev"},
		{"go run", info("(devel)"), "dev"},
		{"go install at a tag", info("v1.2.3"), "v1.2.3"},
		{"go build in a checkout", info("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.modified", "false"), "dev+0123456789ab"},
		{"go build with changes", info("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.modified", "true"), "dev+0123456789ab-dirty"},
	} {
		if got := buildVersion(tc.read); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// startClock is a pki.Clock stopped at one time.
type startClock struct{ at time.Time }

func (c startClock) Now() time.Time { return c.at }

// startRecorder keeps the events recordStart appends.
type startRecorder struct{ events []pki.AuditEvent }

func (r *startRecorder) AppendAudit(_ context.Context, evs ...pki.AuditEvent) error {
	r.events = append(r.events, evs...)
	return nil
}

// The server.started event names the build's commit, and whether its
// tree had changes, when the toolchain stamped them: a version of "dev"
// alone does not tell the builds before and after an upgrade apart (r132
// observation 5). Without a stamp it records the version alone.
func TestServerStartedRecordsTheCommit(t *testing.T) {
	info := func(settings ...string) func() (*debug.BuildInfo, bool) {
		bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return func() (*debug.BuildInfo, bool) { return bi, true }
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name               string
		read               func() (*debug.BuildInfo, bool)
		wantRev, wantDirty string // "" for a field left out
	}{
		{"a commit", info("vcs.revision", rev, "vcs.modified", "false"), rev, "false"},
		{"a commit with changes", info("vcs.revision", rev, "vcs.modified", "true"), rev, "true"},
		{"-buildvcs=false", info(), "", ""},
		{"no build info", func() (*debug.BuildInfo, bool) { return nil, false }, "", ""},
		{"a modified flag but no commit", info("vcs.modified", "true"), "", ""},
	} {
		build := readBuildStamp(buildVersion(tc.read), tc.read)
		e, _, _ := testEnv(nil)
		fs, f := newServeFlags(e)
		profiles, err := f.profileSet()
		if err != nil {
			t.Fatal(err)
		}
		var rec startRecorder
		at := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
		if err := recordStart(context.Background(), &rec, build, fs, profiles, startClock{at}, ln, nil, "", "sqlite test"); err != nil {
			t.Fatal(err)
		}
		if len(rec.events) != 1 || rec.events[0].Type != pki.EventServerStarted {
			t.Fatalf("%s: events %+v, want one server.started", tc.name, rec.events)
		}
		var detail map[string]string
		if err := json.Unmarshal([]byte(rec.events[0].Detail), &detail); err != nil {
			t.Fatal(err)
		}
		if detail["version"] != buildVersion(tc.read) {
			t.Errorf("%s: version %q, want %q", tc.name, detail["version"], buildVersion(tc.read))
		}
		gotRev, hasRev := detail["vcs_revision"]
		gotDirty, hasDirty := detail["vcs_modified"]
		if gotRev != tc.wantRev || gotDirty != tc.wantDirty || hasRev != (tc.wantRev != "") || hasDirty != (tc.wantDirty != "") {
			t.Errorf("%s: vcs_revision %q (%v), vcs_modified %q (%v); want %q and %q, each only when known",
				tc.name, gotRev, hasRev, gotDirty, hasDirty, tc.wantRev, tc.wantDirty)
		}
	}
}
