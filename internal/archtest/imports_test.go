// Package archtest checks the dependency rules of ../../shared/DESIGN.md
// on the real import graph: handlers translate and reach the store and the
// CA only through the enrollment service, no protocol imports another, and
// a client imports only wire formats.
package archtest

import (
	"go/build"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/scepter/scepter/"

// load reads the non-test imports of a package of this module, given as a
// module-relative path. It reads the package's directory (ImportDir) rather
// than resolving the import path (Import): in module mode Import runs
// `go list` once per call, which made this package take most of a minute.
// Both read the same files with the same build constraints.
func load(t *testing.T, pkg string) *build.Package {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bp, err := build.Default.ImportDir(filepath.Join(root, filepath.FromSlash(pkg)), 0)
	if err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	return bp
}

// imports returns the non-test imports of an internal package, direct or
// (transitive) all of them, as module-relative paths ("internal/ca").
func imports(t *testing.T, pkg string, transitive bool) []string {
	t.Helper()
	seen := map[string]bool{}
	var walk func(p string, depth int)
	walk = func(p string, depth int) {
		bp := load(t, p)
		for _, imp := range bp.Imports {
			rel, ok := strings.CutPrefix(imp, module)
			if !ok || seen[rel] {
				continue
			}
			seen[rel] = true
			if transitive {
				walk(rel, depth+1)
			}
		}
	}
	walk(pkg, 0)
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func forbid(t *testing.T, pkg string, transitive bool, forbidden ...string) {
	t.Helper()
	for _, imp := range imports(t, pkg, transitive) {
		for _, f := range forbidden {
			if imp == f || strings.HasPrefix(imp, f+"/") {
				how := "imports"
				if transitive {
					how = "depends on"
				}
				t.Errorf("%s %s %s", pkg, how, imp)
			}
		}
	}
}

func TestHandlersReachStoreAndCAOnlyThroughTheService(t *testing.T) {
	for _, h := range []string{"internal/scep/scepserver", "internal/est/estserver", "internal/ndes"} {
		forbid(t, h, false, "internal/store", "internal/ca", "internal/keys", "internal/admin")
	}
}

func TestNoProtocolImportsAnother(t *testing.T) {
	forbid(t, "internal/scep", true, "internal/est")
	forbid(t, "internal/scep/scepserver", true, "internal/est", "internal/ndes")
	forbid(t, "internal/est", true, "internal/scep")
	forbid(t, "internal/est/estserver", true, "internal/scep", "internal/ndes")
	forbid(t, "internal/ndes", true, "internal/scep", "internal/est")
}

func TestClientImportsOnlyWireFormats(t *testing.T) {
	forbid(t, "internal/client", true, "internal/enroll", "internal/ca", "internal/store", "internal/admin",
		"internal/scep/scepserver", "internal/est/estserver", "internal/server", "internal/ndes", "internal/webhook", "internal/credential")
}

func TestDomainCoreImportsNothingOfOurs(t *testing.T) {
	if got := imports(t, "internal/pki", true); len(got) != 0 {
		t.Errorf("internal/pki depends on %v", got)
	}
	bp := load(t, "internal/pki")
	for _, imp := range bp.Imports {
		if strings.HasPrefix(imp, "net/http") || strings.Contains(imp, "sqlite") {
			t.Errorf("internal/pki imports %s", imp)
		}
	}
}

// ca and store know nothing about HTTP.
func TestCAAndStoreKnowNoHTTP(t *testing.T) {
	for _, pkg := range []string{"internal/ca", "internal/store", "internal/store/sqlite", "internal/enroll"} {
		bp := load(t, pkg)
		for _, imp := range bp.Imports {
			if imp == "net/http" {
				t.Errorf("%s imports net/http", pkg)
			}
		}
	}
}

// The renewal agent runs on devices: like the client, it knows nothing of
// the server side.
func TestAgentImportsOnlyClientSide(t *testing.T) {
	forbid(t, "internal/agent", true, "internal/enroll", "internal/ca", "internal/store", "internal/admin",
		"internal/scep/scepserver", "internal/est/estserver", "internal/server", "internal/ndes", "internal/webhook", "internal/credential")
}

// The expiry notification scheduler reaches the inventory only through the
// store interface and knows no CA, protocol or enrollment code; the test
// SMTP server (notifytest, go-smtp) never reaches the binary.
func TestNotifyUsesOnlyTheStoreInterface(t *testing.T) {
	forbid(t, "internal/notify", false, "internal/store/sqlite", "internal/ca", "internal/keys", "internal/enroll",
		"internal/admin", "internal/server", "internal/scep", "internal/est", "internal/ndes", "internal/notify/notifytest")
	forbid(t, "cmd/scepter", true, "internal/notify/notifytest")
}

// Metrics stay at the edge: the enrollment core, the CA and the store (and
// everything they depend on) report through observer interfaces and never
// import Prometheus.
func TestCoreImportsNoPrometheus(t *testing.T) {
	for _, pkg := range []string{"internal/enroll", "internal/ca", "internal/store", "internal/store/sqlite"} {
		for _, p := range append([]string{pkg}, imports(t, pkg, true)...) {
			bp := load(t, p)
			for _, imp := range bp.Imports {
				if strings.HasPrefix(imp, "github.com/prometheus/") {
					t.Errorf("%s depends on %s (through %s)", pkg, imp, p)
				}
			}
		}
	}
}

// The console (/ui/) calls only the operations layer, and auth through it,
// so it can do nothing the admin API cannot: no store driver, no CA, key,
// enrollment or protocol code, no other HTTP package of the server.
func TestConsoleUsesOnlyTheOperationsLayer(t *testing.T) {
	forbid(t, "internal/console", false, "internal/store/sqlite", "internal/store/postgres", "internal/ca", "internal/enroll",
		"internal/keys", "internal/scep", "internal/est", "internal/ndes", "internal/server", "internal/api", "internal/metrics",
		"internal/credential", "internal/crl", "internal/ocsp", "internal/notify", "internal/jobs", "internal/webhook")
}
