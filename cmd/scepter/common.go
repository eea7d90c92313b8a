package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// storeFlags are shared by every subcommand that touches the store, so they
// all find the same data as a running server.
type storeFlags struct {
	dataDir        string
	store          storeURL
	configFile     string
	defaultProfile string
	// profiles holds the [profiles.NAME] tables of the config file.
	profiles map[string]pki.Profile
}

// DefaultDataDir is where a zero-config server keeps its state.
const DefaultDataDir = "./scepter-data"

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dataDir, "data-dir", DefaultDataDir, "directory holding the CA, the database and the generated challenge")
	fs.Var(&s.store, "store", "the store: a PostgreSQL `URL`, postgres://USER@HOST:PORT/DATABASE, which several nodes may share (a password best in PGPASSWORD or ~/.pgpass, not here: flags show in ps); default: SQLite in the data directory")
	fs.StringVar(&s.configFile, "config", "", "TOML config file (keys are flag names with _ for -; [profiles.NAME] tables)")
	fs.StringVar(&s.defaultProfile, "default-profile", "default", "profile served at /scep and /cgi-bin/pkiclient.exe")
}

// sections decodes the config file's [profiles.NAME] tables.
func (s *storeFlags) sections() config.Sections {
	s.profiles = map[string]pki.Profile{}
	return config.Sections{"profiles": config.ProfileSection(s.profiles)}
}

// profileSet returns the configured profiles, with the built-in default
// profile when the file does not define one named "default".
func (s *storeFlags) profileSet() (map[string]pki.Profile, error) {
	out := map[string]pki.Profile{}
	for n, p := range s.profiles {
		out[n] = p
	}
	if _, ok := out["default"]; !ok {
		out["default"] = pki.DefaultProfile()
	}
	if _, ok := out[s.defaultProfile]; !ok {
		return nil, usageError{fmt.Sprintf("--default-profile %q is not a configured profile", s.defaultProfile)}
	}
	return out, nil
}

// parseFlags resolves flags, environment and config file; maxArgs bounds the
// positional arguments the command takes.
// settingGiven reports whether the setting of flag name was given, on the
// command line, in the environment or in the config file, after
// parseFlags: its value may equal the default all the same.
func settingGiven(fs *flag.FlagSet, e env, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	_, fromElsewhere := e.origins[name]
	return given || fromElsewhere
}

func parseFlags(fs *flag.FlagSet, e env, args []string, maxArgs int, sections config.Sections) error {
	if e.probeFlags != nil {
		e.probeFlags(fs)
		return errProbed
	}
	if maxArgs > 0 {
		args = flagsFirst(fs, args)
	}
	if !overridable[fs.Name()] {
		if err := refuseRepeatedFlags(fs, args); err != nil {
			return err
		}
	}
	// One config file serves every command: keys of serve's settings are
	// not errors for the others.
	serveSet, _ := newServeFlags(e)
	known := func(name string) bool { return serveSet.Lookup(name) != nil }
	var out bytes.Buffer
	fs.SetOutput(&out)
	origins, err := config.ParseOrigins(fs, args, e.lookupEnv, sections, known)
	if e.origins != nil {
		maps.Copy(e.origins, origins)
	}
	if errors.Is(err, flag.ErrHelp) {
		e.stdout.Write(out.Bytes())
		return err
	}
	writeParseOutput(e, out.Bytes(), err)
	fs.SetOutput(e.stderr)
	if err != nil {
		return usageError{err.Error()}
	}
	warnUnknownEnv(e, fs, serveSet)
	if err := checkFileModes(e, fs); err != nil {
		return err
	}
	if fs.NArg() > maxArgs {
		if maxArgs == 0 {
			return usageError{fmt.Sprintf("unexpected arguments: %s (this command takes none; flags go before them)", strings.Join(fs.Args(), " "))}
		}
		return usageError{fmt.Sprintf("unexpected arguments: %s (this command takes %d)", strings.Join(fs.Args()[maxArgs:], " "), maxArgs)}
	}
	return checkDataDirUser(fs)
}

// writeParseOutput writes what the flag package printed while parsing
// (the usage, after a refused flag) to stderr, without the refusal's own
// line above it: the error is printed once, below the usage, as
// "scepter: …", the line a long usage leaves on screen.
func writeParseOutput(e env, out []byte, err error) {
	if err != nil {
		out = bytes.TrimPrefix(out, []byte(err.Error()+"\n"))
	}
	e.stderr.Write(out)
}

// serveLockFile is held by the one `scepter serve` of a data directory.
const serveLockFile = "serve.lock"

// storeLockFile is held shared by every process that has the SQLite
// database open, and alone by 'scepter store restore' (shareStore,
// lockStore).
const storeLockFile = "store.lock"

// serveRunningError: another process holds the data directory's lock
// (lockDataDir): a 'scepter serve', or a 'scepter store restore'. holder
// is " (pid N)" when known, command what the lock file names ("serve",
// "store restore"; "" when it names none).
type serveRunningError struct{ holder, command, dataDir string }

func (e *serveRunningError) Error() string {
	switch e.command {
	case "serve":
		return fmt.Sprintf("another 'scepter serve'%s is running on the data directory %s: stop it first, or give this one its own --data-dir (nodes share a --store, not a data directory)", e.holder, e.dataDir)
	case "":
		return fmt.Sprintf("another scepter command%s holds the data directory %s (%s): stop it first, or give this one its own --data-dir (nodes share a --store, not a data directory)", e.holder, e.dataDir, serveLockFile)
	}
	return fmt.Sprintf("a 'scepter %s'%s holds the data directory %s: let it finish, or stop it, first", e.command, e.holder, e.dataDir)
}

// scepterEntries are names that only a data directory scepter used holds.
var scepterEntries = []string{serveLockFile, storeLockFile, "scepter.db", "ca", "tls", "ocsp", challengeFileName, adminPasswordFile, publicURLFile}

// makeDataDir makes serve's data directory, and the directories above it,
// when missing. Where the operator must mend --data-dir (a file where the
// directory or one above it belongs, a place this user may not write, a
// read-only file system) it is a usage error (exit 2); another failure (a
// failing disk) stays one at run time (exit 1).
func makeDataDir(dir string) error {
	if strings.TrimSpace(dir) == "" {
		return emptyDataDir("serve")
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return notADirectory(dir, "give the directory scepter keeps its CA and store in (made when missing)")
	}
	err := os.MkdirAll(dir, 0o700)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOTDIR):
		return usageError{fmt.Sprintf("--data-dir %s cannot be made (%v): a file stands where a directory on its path belongs; give another path", dir, err)}
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return usageError{fmt.Sprintf("--data-dir %s cannot be made (%v): make it (mode 0700) owned by the user scepter runs as, or give a path that user may create", dir, err)}
	}
	return fmt.Errorf("--data-dir %s cannot be made: %w", dir, err)
}

// notADirectory refuses (exit 2) a --data-dir that is a file; what says
// what to give instead.
func notADirectory(dir, what string) error {
	return usageError{fmt.Sprintf("--data-dir %s is a file, not a directory: %s", dir, what)}
}

// foreignEntry names an entry of dir when dir holds none of
// scepterEntries: "" for a directory that is empty (but for the
// lost+found of a fresh file system) or scepter's.
func foreignEntry(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	foreign := ""
	for _, e := range entries {
		switch {
		case slices.Contains(scepterEntries, e.Name()):
			return "", nil
		case e.Name() != "lost+found" && foreign == "":
			foreign = e.Name()
		}
	}
	return foreign, nil
}

// secureDataDir tightens the data directory to 0700 when its group or
// others may enter it (it holds the CA keys, the database and the
// generated challenge), and the generated challenge and admin password
// to 0600, saying so in the log, and refuses a key of the
// HTTPS certificate our CA issued (DATA/tls/server.key), or of an OCSP
// responder (DATA/ocsp/*.key), that they may read.
// The CA's own key files are checked when the CA is loaded.
func secureDataDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if !fi.IsDir() {
		return notADirectory(dir, "give the directory scepter keeps its CA and store in (made when missing)")
	}
	// Windows mode bits say nothing about access.
	if runtime.GOOS == "windows" {
		return nil
	}
	// What follows is the operator's to mend (exit 2), as a wrong flag is:
	// the directory given, its owner, its mode, and what it holds.
	if owner := notOurs(fi); owner != "" {
		return usageError{fmt.Sprintf("--data-dir %s belongs to %s: its owner could replace the CA's keys and database; give scepter a directory it owns (chown it to the user scepter runs as, or run scepter as its owner)", dir, owner)}
	}
	if err := checkDataDirOwners(dir); err != nil {
		return err
	}
	if old := fi.Mode().Perm(); old&0o077 != 0 {
		// Not a directory others share (/tmp, a home or project
		// directory given by mistake): its mode is not ours to change.
		if fi.Mode()&os.ModeSticky != 0 {
			return usageError{fmt.Sprintf("--data-dir %s is a shared directory (mode %04o with the sticky bit, as /tmp): give scepter a directory of its own, e.g. %s", dir, old, filepath.Join(dir, "scepter"))}
		}
		if foreign, err := foreignEntry(dir); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		} else if foreign != "" {
			return usageError{fmt.Sprintf("--data-dir %s has mode %04o, open to group or others, and holds %s, which is not scepter's: scepter will not change the mode of a directory it does not own; give it a directory of its own (e.g. %s), or run chmod 700 %s if this one is meant for it",
				dir, old, foreign, filepath.Join(dir, "scepter"), shellQuote(dir))}
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("--data-dir %s has mode %04o, open to group or others, and could not be tightened (%w); run: chmod 700 %s", dir, old, err, shellQuote(dir))
		}
		log.Warn("data directory was open to group or others; tightened it", "dir", dir, "old_mode", fmt.Sprintf("%04o", old), "new_mode", "0700")
	}
	// The secrets a start generates are written 0600; one found looser
	// (an older build, a copy made with cp or a backup tool) is
	// tightened as the directory is: it is ours, and only for us.
	for _, name := range []string{challengeFileName, adminPasswordFile} {
		path := filepath.Join(dir, name)
		fi, err := os.Lstat(path)
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			// A link to a file of the operator's (a config-managed
			// /etc/scepter/challenge): read through it, so held to the
			// rules of a secret file a flag names, its mode not ours to
			// change (r138 D1: it was read unchecked).
			if err := checkLinkedSecret(path, log); err != nil {
				return err
			}
			continue
		}
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		old := fi.Mode().Perm()
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("%s has mode %04o, readable by group or others, and could not be tightened (%w); run: chmod 600 %s", path, old, err, shellQuote(path))
		}
		log.Warn("a generated secret's file was open to group or others; tightened it", "file", path, "old_mode", fmt.Sprintf("%04o", old), "new_mode", "0600")
	}
	tlsKey := filepath.Join(dir, "tls", "server.key")
	if _, err := os.Stat(tlsKey); err == nil {
		if err := keys.CheckKeyFileMode(tlsKey); err != nil {
			return fmt.Errorf("HTTPS key: %w", err)
		}
	}
	// The OCSP responders' keys too: one others may have read vouches for
	// certificate status until its certificate expires (days), and
	// replacing it quietly would leave that certificate unrevoked.
	ocspKeys, _ := filepath.Glob(filepath.Join(dir, "ocsp", "*.key"))
	for _, k := range ocspKeys {
		if err := keys.CheckKeyFileMode(k); err != nil {
			return fmt.Errorf("OCSP responder key: %w", err)
		}
	}
	return nil
}

// checkLinkedSecret refuses a generated secret's file in the data
// directory that is a symbolic link to a file another user may change
// (its mode, owner or directory), and warns when group or others may read
// the file it leads to: as --challenge-file's file, since that file is
// not scepter's to tighten.
func checkLinkedSecret(path string, log *slog.Logger) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil // read later, and refused there as what it is
	}
	target, _ := filepath.EvalSymlinks(path)
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return usageError{fmt.Sprintf("%s is a symbolic link to %s, which has mode %04o: group or others may change the secret; run: chmod go-w %s", path, target, perm, shellQuote(target))}
	}
	if err := filetrust.Check(path, path, "the secret"); err != nil {
		return usageError{err.Error()}
	}
	if perm&0o077 != 0 {
		log.Warn("a generated secret's file is a symbolic link to a file group or others may read; left as it is, not being scepter's", "file", path, "target", target,
			"mode", fmt.Sprintf("%04o", perm), "run", "chmod 600 "+shellQuote(target))
	}
	return nil
}

func (s *storeFlags) dbPath() string { return filepath.Join(s.dataDir, "scepter.db") }

// storeURL is the --store flag. Its String, which flag help and the
// configuration digest of the audit trail read, hides a password.
type storeURL struct{ url string }

func (u *storeURL) String() string {
	if u == nil || u.url == "" {
		return ""
	}
	return postgres.Redact(u.url)
}

// Set takes any value: openStore checks it, because the flag package
// quotes a value it refuses, and this one may hold a password.
func (u *storeURL) Set(v string) error {
	u.url = strings.TrimSpace(v)
	return nil
}

func isPostgresURL(v string) bool {
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

// storeName says which store is used, for the banner, logs and the audit
// trail: the PostgreSQL URL without its password, or "sqlite PATH".
func (s *storeFlags) storeName() string {
	if s.store.url != "" {
		return postgres.Redact(s.store.url)
	}
	return "sqlite " + s.dbPath()
}

// openStore opens the store every command uses: PostgreSQL when storeURL
// is set (a postgres:// URL), else SQLite in dataDir (created when
// missing). existing is how the CLI commands open it: it refuses a store
// no server has set up (a missing SQLite file, a PostgreSQL database
// without scepter's schema), so they never create one by accident, and
// one whose schema is older than this binary's, which it leaves as it is
// (only serve migrates: see openServerStore). Without existing the store
// is created and migrated. Errors never show a password.
func openStore(ctx context.Context, storeURL, dataDir string, existing bool) (store.Store, error) {
	return openStoreReporting(ctx, storeURL, dataDir, existing, nil)
}

// openServerStore opens the store as 'scepter serve' does: created when
// missing and migrated, saying so in the log when it was. newSQLite (nil
// but in tests: env.newSQLite) writes a missing SQLite database first.
func openServerStore(ctx context.Context, storeURL, dataDir string, log *slog.Logger, newSQLite func(path string) error) (store.Store, error) {
	if storeURL == "" && newSQLite != nil {
		path := filepath.Join(dataDir, "scepter.db")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := newSQLite(path); err != nil {
				return nil, fmt.Errorf("create %s: %w", path, err)
			}
		}
	}
	return openStoreReporting(ctx, storeURL, dataDir, false, func(from, to int) {
		log.Info("store migrated", "from_schema", from, "to_schema", to)
	}, migrate.OnCompromisedSweep(func(certs, keys int) {
		// Once, at the upgrade: these revocations are in the audit trail
		// and on the next CRLs, but an operator should hear of them.
		log.Warn("store upgrade revoked the other certificates of keys an older scepter revoked as compromised, as a keyCompromise revocation does now (BR 4.9.1.1); their revocations are in the audit trail",
			"certificates", certs, "keys", keys)
	}), migrate.OnLockWait(func(holder string, waited time.Duration) {
		if holder == "" {
			holder = "another session (not readable by this role)"
		}
		log.Warn("waiting for the PostgreSQL migration lock before migrating the schema; if no other node is migrating, end the session holding it",
			"holder", holder, "waited", waited)
	}))
}

// openStoreReporting is openStore, calling migrated (when not nil) with the
// schema versions a migration went from and to; extra are more options.
func openStoreReporting(ctx context.Context, storeURL, dataDir string, existing bool, migrated func(from, to int), extra ...migrate.Option) (store.Store, error) {
	if storeURL != "" {
		if !isPostgresURL(storeURL) {
			// Not quoted: it may hold a password.
			return nil, usageError{"--store: want a postgres:// URL (postgres://USER@HOST:PORT/DATABASE), or nothing for SQLite in the data directory"}
		}
		var opts []migrate.Option
		open := postgres.Open
		if existing {
			open = postgres.OpenExisting
			opts = append(opts, migrate.WithoutMigrating())
		}
		if migrated != nil {
			opts = append(opts, migrate.OnMigrate(migrated))
		}
		opts = append(opts, extra...)
		st, err := open(ctx, storeURL, opts...)
		if errors.Is(err, postgres.ErrInvalidURL) {
			// A configuration error (exit 2), not the store being away:
			// the message shows no password.
			return nil, usageError{"--store: " + err.Error()}
		}
		if errors.Is(err, postgres.ErrNotInitialized) {
			return nil, fmt.Errorf("open store: %w: run 'scepter serve --store URL' on it first, or pass the --store the server uses", err)
		}
		if err != nil {
			return nil, storeOpenError(err)
		}
		return st, nil
	}
	path := filepath.Join(dataDir, "scepter.db")
	var opts []migrate.Option
	if existing {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, noDatabase(dataDir)
		}
		opts = append(opts, migrate.WithoutMigrating())
	}
	if migrated != nil {
		opts = append(opts, migrate.OnMigrate(migrated))
	}
	opts = append(opts, extra...)
	unlock, err := shareStore(dataDir)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, path, opts...)
	if err != nil {
		unlock()
		return nil, storeOpenError(err)
	}
	return lockedSQLite{Store: st, unlock: unlock}, nil
}

// storeOpenError is err from opening the store, with what to do when the
// store's schema is older than this binary's: during an upgrade the new
// binary is in place before the server restarts, and its commands must
// wait for the new server to migrate (or be run with the old binary).
func storeOpenError(err error) error {
	var old *migrate.TooOldError
	if errors.As(err, &old) {
		return shownError{fmt.Sprintf("open store: the store is at schema version %d, this scepter expects %d: start the new 'scepter serve' first (it migrates the store), or use the scepter binary the server runs",
			old.Have, old.Want), err}
	}
	return fmt.Errorf("open store: %w", err)
}

// lockedSQLite is an SQLite store opened under shareStore's lock, which
// Close lets go.
type lockedSQLite struct {
	store.Store
	unlock func()
}

func (s lockedSQLite) Close() error {
	defer s.unlock()
	return s.Store.Close()
}

// openExistingStore opens the store of an initialised data directory (or
// the --store database a server set up); CLI commands never create one by
// accident.
// noCA is err (ca.ErrNoCA) with what to do about it.
func (s *storeFlags) noCA(err error) error {
	return fmt.Errorf("%w: run 'scepter serve --data-dir %s' first, or pass the --data-dir the server uses", err, shellQuote(s.dataDir))
}

// openCAStore opens what the CA commands that change the CA alongside a
// running server work on: the existing store first (they record and audit
// there, and a data directory without a database is not one a server
// uses), then the token the flags name, if any. done closes both.
func (s *storeFlags) openCAStore(ctx context.Context, p11 pkcs11Flags) (st store.Store, token keys.Token, done func(), err error) {
	if st, err = s.openExistingStore(ctx); err != nil {
		return nil, nil, nil, err
	}
	if token, err = p11.open(); err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return st, token, func() {
		if token != nil {
			token.Close()
		}
		st.Close()
	}, nil
}

func (s *storeFlags) openExistingStore(ctx context.Context) (store.Store, error) {
	return openStore(ctx, s.store.url, s.dataDir, true)
}

// flagsFirst moves positional arguments after the flags, so that
// "certs show SERIAL --data-dir D" works like "certs show --data-dir D SERIAL"
// (the flag package stops at the first positional argument).
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the flag package reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(flags, "--"), positional...)
}

// overridable are the commands whose flags a later use overrides, as the
// flag package has it: long-running ones, whose command lines wrappers
// compose from defaults and a site's own flags (a unit's, a script's).
// Elsewhere a flag given twice is more likely two values meant at once
// (two --type filters, two --reason), and is refused.
var overridable = map[string]bool{"serve": true, "agent": true, "bench": true}

// repeatable marks the flag values that collect every use (--dns a --dns
// b); any other keeps only its last.
type repeatable interface{ repeatable() }

func (*stringList) repeatable() {}
func (*nameList) repeatable()   {}
func (*revokeList) repeatable() {}
func (*fileList) repeatable()   {}

// refuseRepeatedFlags refuses a flag given twice on the command line that
// keeps only its last value (the overridable commands aside): `audit list
// --type A --type B` listed B alone, and `certs list --profile A --profile
// B` B's, without a word. It reads args as the flag package does, up to
// the first argument that is no flag (flagsFirst has moved positional
// ones behind "--").
func refuseRepeatedFlags(fs *flag.FlagSet, args []string) error {
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return nil
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			return nil // the flag package reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) {
			i++ // its value
		}
		if _, ok := f.Value.(repeatable); ok {
			continue
		}
		if seen[name] {
			return usageError{fmt.Sprintf("--%s is given twice: it takes one value, and only the last would count", name)}
		}
		seen[name] = true
	}
	return nil
}

// otherEnv are the SCEPTER_ variables read that are no flag's: secrets
// read from the environment, what the agent gives its hooks, and the
// tests' settings (prefixes ending in _).
var otherEnv = []string{"SCEPTER_EST_PASSWORD", rootKeyPassphraseEnv, keysPassphraseEnv, smtpPasswordEnv,
	"SCEPTER_AGENT_", "SCEPTER_TEST_", "SCEPTER_E2E_", "SCEPTER_BENCH_ROWS", "SCEPTER_BIN", "SCEPTER_CLOCKOFFSET_BIN", "SCEPTER_KEYS_TOKEN_GONE_CHILD"}

// errProbed ends a command run for its flag set only (env.probeFlags).
var errProbed = errors.New("flags probed")

// flagCommands are the words that run each command that takes flags:
// knownEnvNames probes each for its flag set. TestFlagCommandsAreEvery
// keeps the list whole.
func flagCommands() [][]string {
	return [][]string{
		{"serve"}, {"enroll"}, {"renew"}, {"getcrl"}, {"bench"}, {"agent"}, {"agent", "status"},
		{"requests", "list"}, {"requests", "approve"}, {"requests", "reject"},
		{"challenge", "new"}, {"challenge", "list"},
		{"est", "cacerts"}, {"est", "enroll"}, {"est", "reenroll"}, {"est", "serverkeygen"},
		{"est", "user", "add"}, {"est", "user", "list"}, {"est", "user", "remove"},
		{"certs", "list"}, {"certs", "show"}, {"certs", "revoke"}, {"certs", "unhold"},
		{"audit", "list"}, {"audit", "verify"},
		{"admin", "token", "new"}, {"admin", "token", "list"}, {"admin", "token", "revoke"},
		{"admin", "user", "add"}, {"admin", "user", "list"}, {"admin", "user", "remove"},
		{"ca", "rollover"}, {"ca", "show"}, {"ca", "export-keys"}, {"ca", "import-keys"}, {"ca", "root", "export"},
		{"ca", "renew-ra"}, {"ca", "root", "crl"},
		{"notify", "test"},
		{"store", "backup"}, {"store", "restore"},
	}
}

// knownEnvNames are the SCEPTER_ variables some command reads: every
// command's settings (each probed for its flag set, which it builds and
// hands over without doing anything else), and otherEnv.
func knownEnvNames() map[string]bool {
	known := map[string]bool{}
	probe := env{
		stdout: io.Discard, stderr: io.Discard,
		lookupEnv:  func(string) (string, bool) { return "", false },
		probeFlags: func(fs *flag.FlagSet) { fs.VisitAll(func(f *flag.Flag) { known[config.EnvName(f.Name)] = true }) },
	}
	for _, words := range flagCommands() {
		_ = run(context.Background(), probe, words) // errProbed
	}
	for _, name := range otherEnv {
		known[name] = true
	}
	return known
}

// warnUnknownEnv says on stderr which SCEPTER_ variables of the
// environment no command reads, with the closest known name: a typo
// (SCEPTER_LISTN) would otherwise be ignored in silence. A variable of
// another command is no typo: one environment often serves serve, the
// CLI and the agent. sets are the command's own flag sets, and serve's,
// which name most variables; every command is probed only for a name
// they lack.
func warnUnknownEnv(e env, sets ...*flag.FlagSet) {
	if e.environ == nil {
		return
	}
	known := map[string]bool{}
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) { known[config.EnvName(f.Name)] = true })
	}
	var all map[string]bool
	for _, kv := range e.environ() {
		name, value, _ := strings.Cut(kv, "=")
		// An empty variable counts as unset (env.emptyVarsUnset).
		if value == "" || !strings.HasPrefix(name, config.EnvPrefix) || known[name] || knownPrefix(name) {
			continue
		}
		if all == nil {
			all = knownEnvNames()
		}
		if all[name] {
			continue
		}
		closest, best := "", -1
		for k := range all {
			if strings.HasSuffix(k, "_") {
				continue
			}
			if d := editDistance(name, k); best < 0 || d < best || d == best && k < closest {
				closest, best = k, d
			}
		}
		fmt.Fprintf(e.stderr, "scepter: warning: %s is set in the environment but is no setting of any scepter command (nearest: %s); it is ignored\n",
			printableLines(name), closest)
	}
}

// knownPrefix: a name under one of otherEnv's prefixes.
func knownPrefix(name string) bool {
	for _, p := range otherEnv {
		if strings.HasSuffix(p, "_") && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkOutputFile refuses an output path that is there and is no regular
// file (a device such as /dev/null, a FIFO, a socket, a directory): every
// client file is written beside its place and renamed over it, which
// would replace the device itself with a regular file, and the paths
// derived from it (chain.pem beside --out) would land in its directory.
// A symbolic link is refused too, whatever it leads to.
func checkOutputFile(flagName, path string) error {
	// Lstat: a symbolic link, even to a regular file, would be replaced
	// by the rename, not written through.
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	if fi.Mode().IsRegular() {
		return nil
	}
	return usageError{fmt.Sprintf("%s %s is %s, not a regular file: scepter writes a new file and renames it into place, which would replace it; name a regular file",
		flagName, path, keys.NonRegularKind(fi.Mode()))}
}

// stagedFile is an output written beside its place, under a temporary
// name, until commit renames it there.
type stagedFile struct {
	flagName, path, tmp string
}

// stageFile writes an output beside path, through write (keys.WriteCertFile
// or keys.WriteKeyFile given the temporary name), without touching path.
func stageFile(flagName, path string, write func(tmp string) error) (*stagedFile, error) {
	if err := checkOutputFile(flagName, path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	f.Close()
	if err := write(f.Name()); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	return &stagedFile{flagName: flagName, path: path, tmp: f.Name()}, nil
}

// commit renames the staged file into place; never over something that
// became no regular file meanwhile.
func (s *stagedFile) commit() error {
	if err := checkOutputFile(s.flagName, s.path); err != nil {
		return err
	}
	if err := os.Rename(s.tmp, s.path); err != nil {
		return fmt.Errorf("%s %s: %w", s.flagName, s.path, err)
	}
	s.tmp = ""
	if d, err := os.Open(filepath.Dir(s.path)); err == nil { // the new name survives a crash
		d.Sync()
		d.Close()
	}
	return nil
}

// discard removes the staged file unless it was committed.
func (s *stagedFile) discard() {
	if s != nil && s.tmp != "" {
		os.Remove(s.tmp)
	}
}

// chainNotWritten: the certificate and its key are in place, the CA
// chain is not.
type chainNotWritten struct{ err error }

func (e *chainNotWritten) Error() string { return "the CA chain was not written: " + e.err.Error() }
func (e *chainNotWritten) Unwrap() error { return e.err }

// writeEnrollment writes an issued certificate, its key (unless keyOut is
// "": it stays where it is) and the CA chain (when there is one) so that
// a failure leaves the pair that was there working: all are written under
// temporary names first, so that a full disk or a bad path stops before
// anything is replaced; then the certificate is renamed into place, the
// key last, then the chain. When only the key's rename fails, the new key
// is kept, and the error says where. A chain that cannot be written is a
// *chainNotWritten.
func writeEnrollment(certOut, keyOut, chainOut string, cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate) (err error) {
	var certFile, keyFile, chainFile *stagedFile
	keepKey := false
	defer func() {
		certFile.discard()
		chainFile.discard()
		if !keepKey {
			keyFile.discard()
		}
	}()
	if certFile, err = stageFile("--out", certOut, func(tmp string) error { return keys.WriteCertFile(tmp, cert) }); err != nil {
		return err
	}
	if keyOut != "" {
		if keyFile, err = stageFile("--key-out", keyOut, func(tmp string) error { return keys.WriteKeyFile(tmp, key) }); err != nil {
			return err
		}
	}
	var chainErr error
	if len(chain) > 0 {
		chainFile, chainErr = stageFile("--chain-out", chainOut, func(tmp string) error { return keys.WriteCertFile(tmp, chain...) })
	}
	if err := certFile.commit(); err != nil {
		return err
	}
	if keyFile != nil {
		if err := keyFile.commit(); err != nil {
			keepKey = true
			return fmt.Errorf("the new certificate is in %s, and its key could not be put in %s (%w): it is in %s; move it there", certOut, keyOut, err, keyFile.tmp)
		}
	}
	if chainFile != nil {
		chainErr = chainFile.commit()
	}
	if chainErr != nil {
		return &chainNotWritten{chainErr}
	}
	return nil
}

// secretFlagOrFile is a secret a command takes as a flag (or its
// environment variable) or from a file: value, or what read reads of file.
// Both given is a usage error (exit 2) naming both as they were given
// (settingsConflict): which one won differed between commands (enroll took
// the file, serve the flag), so the operator could not tell which secret
// was in use.
func secretFlagOrFile(flagName, value, fileFlag, file string, read func(flagName, path string) (string, error)) (string, error) {
	switch {
	case value != "" && file != "":
		return "", newSettingsConflict(" both give the secret: give one", "--"+flagName, "--"+fileFlag)
	case file != "":
		return read("--"+fileFlag, file)
	}
	return value, nil
}

// refuseEnvAndFile refuses a secret given both in the environment variable
// envName (a secret no flag gives) and in the file fileFlag names, as
// secretFlagOrFile refuses a flag and a file: one way to give a secret at
// a time, whatever the command.
func refuseEnvAndFile(e env, envName, fileFlag, file string) error {
	if v, ok := e.lookupEnv(envName); ok && v != "" && file != "" {
		return newSettingsConflict(" both give the secret: give one", envName, "--"+fileFlag)
	}
	return nil
}

// settingsConflict is a usage error (exit 2) refusing settings given
// together, which namedAsGiven words naming each setting as it was given
// (flag, variable, or config file and key): where it is made only the
// flags are known, and a fixed "--flag (or VARIABLE)" read "SCEPTER_X (or
// SCEPTER_X)" once the first name was replaced by its variable.
type settingsConflict struct {
	usageError // the text naming the settings by flag
	// settings are named in this order: "--flag", or a variable that no
	// flag sets (SCEPTER_SMTP_PASSWORD), named as it is.
	settings []string
	rest     string // what follows the names: " both give the secret: give one"
}

func newSettingsConflict(rest string, settings ...string) settingsConflict {
	return settingsConflict{usageError{strings.Join(settings, " and ") + rest}, settings, rest}
}

// Unwrap makes it a usageError to errors.As (exitCode).
func (c settingsConflict) Unwrap() error { return c.usageError }

// namedAs is the refusal naming each setting as origins says it was given.
func (c settingsConflict) namedAs(origins config.Origins) string {
	names := append([]string(nil), c.settings...)
	first, _ := strings.CutPrefix(names[0], "--")
	for i, s := range names {
		if flagName, ok := strings.CutPrefix(s, "--"); ok && i > 0 {
			names[i] = origins.NameAfter(first, flagName)
		}
	}
	// The first, by Refusal, as any refusal's leading setting is named.
	return origins.Refusal(strings.Join(names, " and ") + c.rest)
}

// utf8BOM is the byte order mark some editors put at the start of a
// UTF-8 file.
const utf8BOM = "\ufeff"

// secretFromFile reads the secret in the file a flag names, with the white
// space around it trimmed (the newline an editor or echo leaves). A file
// that cannot be read or holds nothing is refused as a misconfigured flag
// (a usage error, exit 2), naming the flag and the file: an empty secret
// would be taken for none (unsigned webhooks, no password, no challenge)
// while the operator believes one is set.
func secretFromFile(flagName, path string) (string, error) {
	return readSecretFile(flagName, path, "secret", strings.TrimSpace)
}

// readSecretFile reads the file a flag names and keeps what extract takes
// of it, after a leading UTF-8 byte order mark (which Windows Notepad
// writes, and no one means as part of a secret); a file that cannot be
// read, or of which nothing is kept, is a usage error (exit 2) naming the
// flag and the file, for an empty secret would be taken for none. what
// names it in the message ("secret", "password").
func readSecretFile(flagName, path, what string, extract func(string) string) (string, error) {
	b, err := filetrust.ReadRegular(path)
	if err != nil {
		return "", usageError{fmt.Sprintf("%s: %v", flagName, err)}
	}
	v := extract(strings.TrimPrefix(string(b), utf8BOM))
	if v == "" {
		return "", usageError{fmt.Sprintf("%s %s is empty: write the %s in it, or leave the flag out", flagName, path, what)}
	}
	return v, nil
}

// passphraseFromFile reads the passphrase in the file a flag names (its
// first line, as keys.ReadPassphraseFile reads it); a file that is missing,
// unreadable or whose first line is empty is a misconfigured flag, exit 2,
// as every other secret or password file is (README, Configuration).
func passphraseFromFile(flagName, path string) ([]byte, error) {
	p, err := keys.ReadPassphraseFile(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s: %v", flagName, err)}
	}
	return p, nil
}

// serviceError is what a command shows of an error from a service: a
// refusal's client-safe message; a store out of reach with its cause
// ("temporarily unavailable (database or disk is full), try again later"),
// for at the command line the operator is the one who must mend it, and the
// stores keep secrets out of their errors (a PostgreSQL URL's password is
// redacted); an internal error as it is. It wraps err.
func serviceError(err error) error {
	if errors.Is(err, store.ErrAuditTampered) {
		return shownError{auditTamperedText(err), err}
	}
	switch pki.ErrorCode(err) {
	case pki.EInternal:
		return err
	case pki.EUnavailable:
		s := err.Error()
		prefix := pki.ErrUnavailable.Error() + ": "
		if i := strings.LastIndex(s, prefix); i >= 0 && errors.Is(err, pki.ErrUnavailable) {
			return shownError{fmt.Sprintf("%s (%s), try again later", pki.ErrUnavailable, s[i+len(prefix):]), err}
		}
	}
	return shownError{pki.ErrorMessage(err), err}
}

// auditTamperedText is how the CLI shows store.ErrAuditTampered: with what
// the store found ("record 12 comes after the head, record 9"), as serve
// shows it, where clients get the message alone. The terminal is the
// operator's, who needs the record to mend the trail, and the finding
// holds no secret; the database's own error after the message does not
// help and is left out.
func auditTamperedText(err error) string {
	s := err.Error()
	i := strings.Index(s, ": "+store.ErrAuditTampered.Error())
	if i < 0 {
		return store.AuditTamperedMessage
	}
	// The finding is the innermost wrap before the message; the ones
	// before it name the operation and the store ("sqlite: audit chain
	// head: ").
	found := s[:i]
	if j := strings.LastIndex(found, ": "); j >= 0 {
		found = found[j+2:]
	}
	return "audit trail: " + found + ": " + store.AuditTamperedMessage
}

// argumentError is serviceError for a service that judged an argument the
// command was given (a name, a password, a profile): a refusal of it
// (EBadRequest) is a usage error, exit 2, as a flag value out of range is.
func argumentError(err error) error {
	if pki.ErrorCode(err) == pki.EBadRequest {
		return usageError{pki.ErrorMessage(err)}
	}
	return serviceError(err)
}

// shownError shows msg in place of err, which it wraps.
type shownError struct {
	msg string
	err error
}

func (e shownError) Error() string { return e.msg }
func (e shownError) Unwrap() error { return e.err }
