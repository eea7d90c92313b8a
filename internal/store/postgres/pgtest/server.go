package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvBinDir names the directory of PostgreSQL's initdb and pg_ctl when they
// are neither on PATH nor in /usr/lib/postgresql/VERSION/bin.
const EnvBinDir = "SCEPTER_TEST_POSTGRES_BIN"

// Server is a private PostgreSQL server of one test, for tests that stop
// and start the database (the shared server of $SCEPTER_TEST_POSTGRES_URL
// must never be stopped). It listens on 127.0.0.1 only, with trust
// authentication for the superuser postgres, and its data lives in a
// temporary directory removed at the end of the test.
type Server struct {
	// URL is the superuser URL of the server's postgres database.
	URL string

	t       testing.TB
	bin     string // directory of initdb and pg_ctl
	dir     string // the temporary directory: data/, sock/, log
	port    int
	asUser  string // OS user to run PostgreSQL as ("" for this process's)
	mu      sync.Mutex
	running bool
}

// StartServer initialises a PostgreSQL cluster in a temporary directory
// (initdb, as the postgres OS user when the test runs as root, which initdb
// refuses) and starts it with pg_ctl on a free 127.0.0.1 port. It is
// stopped and removed when the test ends. Without PostgreSQL's programs the
// test skips, or fails when $SCEPTER_E2E_REQUIRE=1.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := binDir(t)
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			end(t, "running as root, PostgreSQL must run as the postgres OS user, which does not exist (%v)", err)
		}
		s.asUser = u.Username
	}
	dir, err := os.MkdirTemp("", "scepter-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if s.asUser != "" {
		// Its parent (the system's temporary directory) must let the
		// postgres user in; /tmp does.
		u, _ := user.Lookup(s.asUser)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s.mkdir(filepath.Join(dir, "sock"))
	s.run(t, "initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	// Stopped at the end whatever happened, before the directory goes.
	t.Cleanup(func() { s.stop(t, "fast", false) })
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.port = freePort(t)
		if lastErr = s.start(); lastErr == nil {
			s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
			return s
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	t.Fatalf("start a private PostgreSQL: %v", lastErr)
	return nil
}

// Stop stops the server with pg_ctl stop -m fast: open connections are
// ended, committed transactions are kept.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t, "fast", true)
}

// Start starts the server again on the same port after Stop.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("restart the private PostgreSQL: %v", err)
	}
}

// Database creates a database on this server and returns its URL.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	// Not dropped: the whole cluster goes at the end.
	return createDatabase(t, s.URL, false)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", s.port, filepath.Join(s.dir, "sock"))
	out, err := s.cmd("pg_ctl", "start", "-w", "-t", "60", "-D", s.dataDir(), "-l", filepath.Join(s.dir, "log"), "-o", opts)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n--- server log ---\n%s", err, out, lastLines(string(log), 20))
	}
	s.running = true
	return nil
}

func (s *Server) stop(t testing.TB, mode string, must bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	out, err := s.cmd("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", s.dataDir())
	if err != nil {
		if must {
			t.Fatalf("pg_ctl stop: %v\n%s", err, out)
		}
		t.Logf("pg_ctl stop: %v\n%s", err, out)
		return
	}
	s.running = false
}

// run runs one of PostgreSQL's programs and fails the test when it fails.
func (s *Server) run(t testing.TB, prog string, args ...string) {
	t.Helper()
	if out, err := s.cmd(prog, args...); err != nil {
		t.Fatalf("%s: %v\n%s", prog, err, out)
	}
}

// cmd runs prog from the PostgreSQL bin directory, as s.asUser when set.
func (s *Server) cmd(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(s.bin, prog)
	var c *exec.Cmd
	if s.asUser != "" {
		c = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		c = exec.CommandContext(ctx, path, args...)
	}
	c.Dir = s.dir
	// pg_ctl's server outlives the command: its output goes to the log
	// file, so that waiting for this command does not wait for it.
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	return out.Bytes(), err
}

// mkdir makes a directory for the server, owned by the user it runs as.
func (s *Server) mkdir(dir string) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	if s.asUser != "" {
		u, _ := user.Lookup(s.asUser)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			s.t.Fatal(err)
		}
	}
}

// binDir finds initdb and pg_ctl: $SCEPTER_TEST_POSTGRES_BIN, PATH, or the
// newest /usr/lib/postgresql/VERSION/bin (Debian keeps them off PATH).
func binDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvBinDir); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			t.Fatalf("$%s=%s: %v", EnvBinDir, d, err)
		}
		return d
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// A symlink on PATH (/usr/local/bin/initdb) stands for the
		// version's own directory, which also holds pg_dump and the rest.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "pg_ctl")); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	end(t, "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql; or set $%s)", EnvBinDir)
	return ""
}

// version is the major version in /usr/lib/postgresql/VERSION/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// end skips the test, or fails it when $SCEPTER_E2E_REQUIRE=1.
func end(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("SCEPTER_E2E_REQUIRE") == "1" {
		t.Fatal(msg + " (SCEPTER_E2E_REQUIRE=1)")
	}
	t.Skip(msg + "; set SCEPTER_E2E_REQUIRE=1 to make this a failure")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BinDir is the directory of PostgreSQL's programs (pg_dump, pg_restore,
// initdb, …) of the newest version installed, found as StartServer finds
// them.
func BinDir(t testing.TB) string {
	t.Helper()
	return binDir(t)
}
