package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
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
	binDir = dir
	setupBinary(dir)
	flag.Parse()
	raiseParallel()
	if flag.Lookup("test.run").Value.String() == "" {
		// The whole suite runs, the agent tests with it: build the second
		// binary now, beside the tests that do not need it, rather than
		// inside the first agent test while it holds one of the few
		// parallel slots (CI saw that build take a minute under load).
		go clockOffsetOnce.Do(buildClockOffset)
		// And the prepared data directory, beside the serial tests.
		go preparedOnce.Do(prepareDataDir)
	}
	code := m.Run()
	clockOffsetOnce.Do(func() {}) // waits for a build still under way
	preparedOnce.Do(func() {})    // and for a first start
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

// binDir holds the binaries TestMain builds.
var binDir string

// The second build, with the test-only tag scepter_clockoffset: its
// pki.SystemClock is moved by $SCEPTER_TEST_CLOCK_OFFSET, so a test can run
// a command as if at another time. Built on first use, or in the background
// from the start when the whole suite runs (or $SCEPTER_CLOCKOFFSET_BIN).
var (
	clockOffsetOnce sync.Once
	clockOffsetPath string
	clockOffsetErr  error
)

// clockOffsetBin returns the scepter_clockoffset build, or ends the test
// when it could not be built.
func clockOffsetBin(t testing.TB) string {
	t.Helper()
	clockOffsetOnce.Do(buildClockOffset)
	if clockOffsetErr != nil {
		t.Fatal(clockOffsetErr)
	}
	return clockOffsetPath
}

// buildClockOffset sets clockOffsetPath, or clockOffsetErr; run it through
// clockOffsetOnce.
func buildClockOffset() {
	if p := os.Getenv("SCEPTER_CLOCKOFFSET_BIN"); p != "" {
		clockOffsetPath, clockOffsetErr = filepath.Abs(p)
		if clockOffsetErr == nil {
			_, clockOffsetErr = os.Stat(clockOffsetPath)
		}
		return
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if p, lerr := exec.LookPath("go"); lerr == nil {
			goTool = p
		}
	}
	out := filepath.Join(binDir, "scepter-clockoffset")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, goTool, "build", "-tags", "scepter_clockoffset", "-o", out, "github.com/scepter/scepter/cmd/scepter").CombinedOutput()
	if err != nil {
		clockOffsetErr = fmt.Errorf("go build -tags scepter_clockoffset ./cmd/scepter: %v\n%s", err, b)
		return
	}
	clockOffsetPath = out
}

// minParallel is how many parallel tests of this package run at once
// unless -parallel says otherwise. go test's default, GOMAXPROCS, counts
// this process's CPUs, but these tests spend their time waiting on child
// processes (servers, clients, PostgreSQL) and on real time (a rollover's
// switch 25 s ahead, an outage held for 2 s): with 2 CPUs, two such waits
// held the whole package. The children still share the machine's CPUs.
const minParallel = 4

// raiseParallel sets -test.parallel to minParallel when it was not given
// and GOMAXPROCS is lower. Call it after flag.Parse.
func raiseParallel() {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < minParallel {
		if err := flag.Set("test.parallel", strconv.Itoa(minParallel)); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: -test.parallel:", err)
			os.Exit(2)
		}
	}
}

// requireAll reports whether missing external clients are failures.
func requireAll() bool { return os.Getenv("SCEPTER_E2E_REQUIRE") == "1" }
