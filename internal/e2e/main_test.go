package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// scepterBin is the binary under test, set by TestMain (built from
// ./cmd/scepter, or $SCEPTER_BIN). When it could not be built, buildErr
// says why and every test that needs it fails with that.
var (
	scepterBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scepter-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(2)
	}
	setupBinary(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func setupBinary(dir string) {
	if p := os.Getenv("SCEPTER_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			buildErr = fmt.Errorf("SCEPTER_BIN=%q: %v", p, err)
			return
		}
		scepterBin = abs
		return
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if p, lerr := exec.LookPath("go"); lerr == nil {
			goTool = p
		}
	}
	out := filepath.Join(dir, "scepter")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "github.com/scepter/scepter/cmd/scepter")
	b, err := cmd.CombinedOutput()
	if err != nil {
		buildErr = fmt.Errorf("go build ./cmd/scepter: %v\n%s", err, b)
		return
	}
	scepterBin = out
}

// bin returns the scepter binary or ends the test when there is none.
func bin(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return scepterBin
}

// requireAll reports whether missing external clients are failures.
func requireAll() bool { return os.Getenv("SCEPTER_E2E_REQUIRE") == "1" }
