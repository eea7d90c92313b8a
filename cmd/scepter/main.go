// Command scepter is a certificate authority, SCEP server and client, and
// certificate inventory in one binary. This file holds only the subcommand
// table; each subcommand lives in its own file.
package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/keys"
)

// env is what a subcommand may touch of the outside world, so tests can run
// subcommands in-process.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// environ lists the environment as NAME=VALUE (os.Environ), so that a
	// misspelt SCEPTER_ variable is warned about; nil: not checked.
	environ func() []string
	// probeFlags, when set, is handed the flag set of the command run,
	// which then returns errProbed before parsing or doing anything: how
	// knownEnvNames learns every command's settings.
	probeFlags func(*flag.FlagSet)
	// generateKey makes the key files of a new CA and RA, and the new key
	// of a client's request (enroll, renew, est) (nil: keys.Generate):
	// tests hand out keys made beforehand, as RSA key generation was
	// nearly half of their CPU.
	generateKey func(keyType string) (crypto.Signer, error)
	// newSQLite, when set, writes a new, migrated SQLite database at path
	// for serve when the data directory has none (nil: sqlite.Open creates
	// and migrates it): tests copy one migrated once per test binary, as
	// migrating a new database on every start was a tenth of their CPU.
	newSQLite func(path string) error
	// origins, made by run for the command it runs, collects where
	// parseFlags took each setting from, so that a refusal of one names
	// it as it was given (namedAsGiven); nil: not collected.
	origins config.Origins
}

// emptyVarsUnset makes a variable set to the empty string count as unset,
// for every variable alike: SCEPTER_LISTEN= (often a template's unfilled
// line) would otherwise override the config file with an empty address,
// and SCEPTER_RATE_LIMIT= would fail to parse. An empty value is still
// given with the flag itself (--flag=) or in the config file.
func (e env) emptyVarsUnset() env {
	lookup := e.lookupEnv
	if lookup == nil {
		return e
	}
	e.lookupEnv = func(name string) (string, bool) {
		v, ok := lookup(name)
		return v, ok && v != ""
	}
	return e
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the CA and SCEP server", cmdServe},
		{"enroll", "enroll for a certificate from a SCEP server", cmdEnroll},
		{"renew", "renew a certificate from a SCEP server, authenticated by the certificate", cmdRenew},
		{"getcrl", "fetch a CA's CRL from a SCEP server (GetCRL)", cmdGetCRL},
		{"requests", "list, approve and reject requests held for approval", cmdRequests},
		{"challenge", "manage one-time enrollment challenges (challenge new | list)", cmdChallenge},
		{"est", "enroll over EST (est cacerts|enroll|reenroll|serverkeygen) and manage EST users (est user add|list|remove)", cmdEST},
		{"agent", "keep certificates on this machine renewed (agent | agent status)", cmdAgent},
		{"certs", "list, show and revoke issued certificates (certs list | show | revoke | unhold)", cmdCerts},
		{"audit", "read and check the audit trail (audit list | audit verify)", cmdAudit},
		{"admin", "manage API tokens and console users (admin token new|list|revoke, admin user add|list|remove)", cmdAdmin},
		{"ca", "manage the CA (ca show | ca rollover | ca renew-ra | ca root export | ca root crl | ca export-keys | ca import-keys)", cmdCA},
		{"notify", "test the notification setup: a test mail, a test webhook request (notify test [--to ADDRESS])", cmdNotify},
		{"store", "back up and restore the SQLite store (store backup --out FILE | store restore --in FILE)", cmdStore},
		{"bench", "load-test SCEP or EST servers and verify what they issue (bench --url URL …)", cmdBench},
		{"version", "print the version", cmdVersion},
	}
}

// version is set at build time with -ldflags "-X main.version=...";
// otherwise it is read from what the Go toolchain stamped (buildVersion).
var version = buildVersion(debug.ReadBuildInfo)

// buildVersion is the module version the toolchain stamps (`go install
// …@vX`; `go build` in a git checkout stamps a pseudo-version naming the
// commit, +dirty for a tree with changes), else the commit it stamps
// ("dev+COMMIT", "-dirty"), else "dev" (go run, -buildvcs=false): so that
// two builds made as README says can be told apart, in `scepter version`,
// the start banner and the server.started event.
func buildVersion(read func() (*debug.BuildInfo, bool)) string {
	bi, ok := read()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "dev"
	}
	return "dev+" + rev[:min(12, len(rev))] + dirty
}

// buildStamp is what the server.started event records of the build:
// version as `scepter version` prints it, and the commit the toolchain
// stamped in full with whether the tree had changes ("true" or "false"),
// both "" when it stamped none (go run, -buildvcs=false, a module built
// by `go install …@vX`): with them the audit trail tells apart the builds
// that ran before and after an upgrade, which a version of "dev" alone
// does not (r132 observation 5).
type buildStamp struct {
	version, revision, modified string
}

// thisBuild is this binary's buildStamp.
var thisBuild = readBuildStamp(version, debug.ReadBuildInfo)

// readBuildStamp is the buildStamp of a binary of version whose build
// information read gives.
func readBuildStamp(version string, read func() (*debug.BuildInfo, bool)) buildStamp {
	b := buildStamp{version: version}
	bi, ok := read()
	if !ok {
		return b
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.modified":
			b.modified = s.Value
		}
	}
	if b.revision == "" {
		b.modified = ""
	}
	return b
}

func main() {
	ctx, stop := signalContext()
	defer stop()
	e := env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv, environ: os.Environ}
	if err := run(ctx, e, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			// Errors may quote what a server sent or the store holds.
			fmt.Fprintf(os.Stderr, "scepter: %s\n", printableLines(err.Error()))
		}
		os.Exit(exitCode(err))
	}
}

// signalContext is cancelled by the first SIGINT or SIGTERM: serve shuts
// down gracefully, a command stops at its next call that heeds ctx. Then
// both signals take their default action again, so that a second one ends
// the process at once (exit status 130 for SIGINT, 143 for SIGTERM, as a
// shell shows it) even when the command waits where no context reaches:
// otherwise only SIGKILL could end it.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
		}
		// Before the cancel, so that whoever sees ctx done may count
		// on a second signal ending the process.
		signal.Stop(sigs)
		cancel()
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
	}
}

// usageError marks errors caused by how the command was called (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// namedAsGiven is err, but a usage error that refuses a setting by its
// flag ("--notify-interval must be positive") names the setting as it
// was given when that was not on the command line: its config file and
// key, or its environment variable (config.Origins.Refusal). The checks
// of a setting's range or choices run after parsing, where only the flag
// is known, for whichever way it was set. A settingsConflict names each
// of the settings it refuses so.
func namedAsGiven(err error, origins config.Origins) error {
	if c, ok := err.(settingsConflict); ok {
		return usageError{c.namedAs(origins)}
	}
	if u, ok := err.(usageError); ok {
		return usageError{origins.Refusal(u.msg)}
	}
	return err
}

// exitCode: 0 for help that was asked for (printed on stdout), 2 for a
// usage error (on stderr) or a key file others may read (found wherever a
// key is opened, deep in the CA's loading, and mended with the chmod its
// message names, as a misconfigured flag is), 1 for anything else.
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u), errors.Is(err, keys.ErrSecretFileMode):
		return 2
	}
	return 1
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// subcommand reads the subcommand of a command group (certs, requests, …):
// help asked for goes to stdout (flag.ErrHelp, exit 0); none at all is a
// usage error (stderr, exit 2).
func subcommand(e env, args []string, usage string) (string, error) {
	if len(args) == 0 {
		return "", usageError{usage}
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, usage)
		return "", flag.ErrHelp
	}
	return args[0], nil
}

func run(ctx context.Context, e env, args []string) error {
	e = e.emptyVarsUnset()
	if len(args) == 0 {
		usage(e.stderr)
		return usageError{"no command given"}
	}
	if isHelp(args[0]) {
		usage(e.stdout)
		return flag.ErrHelp
	}
	for _, c := range commands() {
		if c.name == args[0] {
			e.origins = config.Origins{}
			return namedAsGiven(noTokenGiven(c.run(ctx, e, args[1:])), e.origins)
		}
	}
	usage(e.stderr)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: scepter COMMAND [flags]\n\nCommands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'scepter COMMAND -h' for a command's flags. Every flag can also be set as SCEPTER_<FLAG> in the environment, and, but for the client commands (enroll, renew, getcrl, est enroll|reenroll|cacerts|serverkeygen, bench), in a TOML file given with --config.")
}

func cmdVersion(_ context.Context, e env, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(e.stdout, "Usage: scepter version")
		return flag.ErrHelp
	}
	if len(args) > 0 {
		return usageError{fmt.Sprintf("unexpected arguments: %v", args)}
	}
	fmt.Fprintln(e.stdout, "scepter", version)
	return nil
}

// newFlagSet returns a flag set whose usage names the command. parseFlags
// sends the usage to stdout when help was asked for, to stderr otherwise.
func newFlagSet(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: scepter %s\n\nFlags (each also SCEPTER_<NAME> in the environment):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func joinLines(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
