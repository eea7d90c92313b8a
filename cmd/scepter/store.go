package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// `scepter store backup` and `scepter store restore`: the SQLite store's
// backup and restore, done by SQLite. A copy of scepter.db made with cp
// misses the commits still only in scepter.db-wal, and a copy put back
// beside the replaced database's -wal has that log replayed onto it
// without a word (OCSP good for what the CRL lists as revoked).

const storeUsage = "usage: scepter store backup --out FILE [--force] [--data-dir DIR] | scepter store restore --in FILE [--data-dir DIR]"

func cmdStore(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, storeUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "backup":
		return storeBackup(ctx, e, args[1:])
	case "restore":
		return storeRestore(ctx, e, args[1:])
	}
	return usageError{fmt.Sprintf("unknown store command %q: want backup or restore", sub)}
}

// noDatabase is why a command finds no scepter.db in dataDir, with what
// to do: 'scepter serve' makes one only where no server ran with the CA
// (refuseLostSQLite), so a CA a server ran with needs its database back.
func noDatabase(dataDir string) error {
	d := shellQuote(dataDir)
	switch _, err := os.Stat(filepath.Join(dataDir, "ca")); {
	case err != nil:
		return fmt.Errorf("no scepter database in %s: run 'scepter serve --data-dir %s' first, or pass the --data-dir (or --store) the server uses", dataDir, d)
	case caServedFrom(dataDir):
		return fmt.Errorf("no scepter database in %s, which holds a CA a server ran with: when the server's store is PostgreSQL, pass the --config it runs with (its store = …) or its --store; "+
			"when it is SQLite, restore its database from a backup (scepter store restore --data-dir %s --in BACKUP), without which 'scepter serve' refuses this data directory", dataDir, d)
	}
	return fmt.Errorf("no scepter database in %s, which holds a CA no server ran with here yet: restore its database from a backup (scepter store restore --data-dir %s --in BACKUP), "+
		"pass the --store the servers use when their store is PostgreSQL, or run 'scepter serve --data-dir %s' first", dataDir, d, d)
}

// caServedFrom: dataDir holds a CA a server ran with (it wrote the public
// URL), not only keys imported.
func caServedFrom(dataDir string) bool {
	for _, f := range []string{filepath.Join(dataDir, "ca", ca.RootCertFile), filepath.Join(dataDir, publicURLFile)} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// sqliteOnly refuses a PostgreSQL store, which its own tools back up, and
// a --store that is no URL (not quoted: it may hold a password).
func (s *storeFlags) sqliteOnly(cmd string) error {
	switch {
	case s.store.url == "":
		return nil
	case isPostgresURL(s.store.url):
		return usageError{fmt.Sprintf("scepter store %s is for the SQLite store in the data directory; back up a PostgreSQL store with pg_dump --format=custom and restore it with pg_restore (docs/deployment.md, Backups)", cmd)}
	}
	return usageError{"--store: want a postgres:// URL (postgres://USER@HOST:PORT/DATABASE), or nothing for SQLite in the data directory"}
}

func storeBackup(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var out string
	var force bool
	flags := newFlagSet(e, "store backup", "store backup --out FILE [--force] [--data-dir DIR]")
	sf.register(flags)
	flags.StringVar(&out, "out", "", "the backup `FILE` to write (mode 0600): a consistent copy of DATA/scepter.db, its write-ahead log included, while 'scepter serve' runs or not")
	flags.BoolVar(&force, "force", false, "replace --out when it exists")
	if err := parseFlags(flags, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if err := sf.sqliteOnly("backup"); err != nil {
		return err
	}
	if out == "" {
		return usageError{"--out FILE is required: where to write the backup"}
	}
	db := sf.dbPath()
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no scepter database in %s: pass the --data-dir the server uses", sf.dataDir)
	} else if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := refuseDatabaseFiles("--out", out, db); err != nil {
		return err
	}
	if err := checkBackupOut(out, sf.dataDir); err != nil {
		return err
	}
	exists := func() error {
		if fi, err := os.Lstat(out); err == nil && fi.Mode().IsRegular() && !force {
			return usageError{fmt.Sprintf("--out %s exists: name another file, or pass --force to replace it", out)}
		}
		return nil
	}
	if err := exists(); err != nil {
		return err
	}
	removeBackupLeftovers(e, out, time.Now())
	var facts sqlite.FileFacts
	staged, err := stageFile("--out", out, func(tmp string) error {
		if err := sqlite.Backup(ctx, db, tmp); err != nil {
			return explainUnwritableDataDir(err, filepath.Dir(db))
		}
		if err := syncFile(tmp); err != nil {
			return err
		}
		var err error
		facts, err = sqlite.Inspect(ctx, tmp)
		return err
	})
	if err != nil {
		return err
	}
	defer staged.discard()
	// Made meanwhile (another backup to the same name)?
	if err := exists(); err != nil {
		return err
	}
	if err := staged.commit(); err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Backed up %s to %s: %d bytes, schema version %d, %d certificate(s)\n",
		db, out, fi.Size(), facts.SchemaVersion, facts.Certificates)
	return nil
}

// checkBackupOut refuses a backup's --out whose directory does not exist
// (a backup disk not mounted: the backup would go to the disk beneath),
// and one inside the data directory, symbolic links followed: there it
// could replace the CA's keys or its CRL numbers, and it would be lost
// with the directory it is to survive.
func checkBackupOut(out, dataDir string) error {
	real, inside, err := checkOutPath(out, dataDir)
	if err != nil {
		return err
	}
	if inside {
		return usageError{fmt.Sprintf("--out %s is inside the data directory %s (as %s): name a file outside it, on another disk, where it cannot replace the CA's files and survives the loss of the data directory", out, dataDir, real)}
	}
	return nil
}

// checkOutPath refuses an --out whose directory does not exist (a disk not
// mounted: the file would go to the disk beneath) or is no directory, and
// says where the file would be, symbolic links followed, and whether that
// is inside the data directory, which each caller refuses in its words.
func checkOutPath(out, dataDir string) (real string, inside bool, _ error) {
	parent := filetrust.LiteralDir(out)
	switch fi, err := os.Stat(parent); {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, usageError{fmt.Sprintf("--out %s: directory %s does not exist: create it, or mount the disk that holds it", out, parent)}
	case err != nil:
		return "", false, fmt.Errorf("--out %s: %w", out, err)
	case !fi.IsDir():
		return "", false, usageError{fmt.Sprintf("--out %s: %s is not a directory", out, parent)}
	}
	real, inside, err := insideDataDir(out, dataDir)
	if err != nil {
		return "", false, fmt.Errorf("--out %s: %w", out, err)
	}
	return real, inside, nil
}

// insideDataDir says whether the file at path, whose directory exists, is
// in dataDir once every symbolic link on the way (and the file's own, if it
// is one) is followed, each ".." taken after the link before it, as the
// kernel takes it; real is where it is.
func insideDataDir(path, dataDir string) (real string, inside bool, err error) {
	if path, err = filetrust.FromRealCwd(path); err != nil {
		return "", false, err
	}
	// EvalSymlinks walks the path as written, a ".." from where the link
	// before it leads.
	dir, err := filepath.EvalSymlinks(filetrust.LiteralDir(path))
	if err != nil {
		return "", false, err
	}
	// The last element (a ".." too) is taken from the real directory.
	real = filepath.Join(dir, path[strings.LastIndexByte(path, filepath.Separator)+1:])
	if target, err := filepath.EvalSymlinks(real); err == nil {
		real = target
	}
	data, err := filetrust.FromRealCwd(dataDir)
	if err != nil {
		return "", false, fmt.Errorf("data dir: %w", err)
	}
	if r, err := filepath.EvalSymlinks(data); err == nil {
		data = r
	}
	rel, err := filepath.Rel(data, real)
	return real, err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), nil
}

// backupLeftoverQuiet is how long a staged backup beside --out must have
// been left unwritten before a later backup takes it for one a killed
// backup left: a backup running meanwhile writes its copy all along.
const backupLeftoverQuiet = time.Minute

// removeBackupLeftovers removes the copies a backup to out that was
// killed left beside it (stageFile's .NAME.new-DIGITS, and the rollback
// journal SQLite wrote beside it), each as big as the database; only
// files of that exact name, unwritten for backupLeftoverQuiet before now
// (the file system's clock, which stamps them).
func removeBackupLeftovers(e env, out string, now time.Time) {
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	leftover := regexp.MustCompile(`^\.` + regexp.QuoteMeta(base) + `\.new-[0-9]+(-journal)?$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, ent := range entries {
		if !leftover.MatchString(ent.Name()) || !ent.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		if fi, err := ent.Info(); err != nil || now.Sub(fi.ModTime()) < backupLeftoverQuiet {
			continue
		}
		if err := os.Remove(path); err != nil {
			fmt.Fprintf(e.stderr, "scepter: warning: a copy an earlier backup left, %s, could not be removed: %v\n", path, err)
			continue
		}
		fmt.Fprintf(e.stderr, "scepter: removed %s, a copy an earlier backup to %s left when it was stopped\n", path, out)
	}
}

// explainUnwritableDataDir adds why a backup of a database in a directory
// it cannot write to fails, and what to do, to err (SQLite says only
// "unable to open database file"): to read a database in WAL mode SQLite
// writes its shared index, scepter.db-shm, beside it. Any other err is
// returned as it is.
func explainUnwritableDataDir(err error, dir string) error {
	probe, perr := os.CreateTemp(dir, ".scepter-write-probe-*")
	if perr == nil {
		probe.Close()
		os.Remove(probe.Name())
		return err
	}
	return fmt.Errorf("%w: %s cannot be written to (%v), and SQLite writes scepter.db-shm beside the database to read it (it is in WAL mode): copy scepter.db together with scepter.db-wal to a writable directory and back up from there (--data-dir), or mount the data directory read-write",
		err, dir, perr)
}

// refuseDatabaseFiles refuses a path that names the live database or its
// -wal or -shm file.
func refuseDatabaseFiles(flagName, path, db string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	fi, statErr := os.Stat(path)
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		dbAbs, err := filepath.Abs(f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		same := abs == dbAbs
		if other, err := os.Stat(f); err == nil && statErr == nil && os.SameFile(fi, other) {
			same = true
		}
		if same {
			return usageError{fmt.Sprintf("%s %s is the store's own %s: name a file outside it", flagName, path, filepath.Base(f))}
		}
	}
	return nil
}

func storeRestore(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var in string
	flags := newFlagSet(e, "store restore", "store restore --in FILE [--data-dir DIR]")
	sf.register(flags)
	flags.StringVar(&in, "in", "", "the backup `FILE` ('scepter store backup' wrote it) to put in place of DATA/scepter.db, which is kept as scepter.db.before-restore-TIME")
	if err := parseFlags(flags, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if err := sf.sqliteOnly("restore"); err != nil {
		return err
	}
	if in == "" {
		return usageError{"--in FILE is required: the backup to restore"}
	}
	if fi, err := os.Stat(sf.dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", sf.dataDir)
	}
	db := sf.dbPath()
	if err := refuseDatabaseFiles("--in", in, db); err != nil {
		return err
	}
	// The rename would replace the link, not the database it names, and
	// the kept copy would be the link alone.
	if fi, err := os.Lstat(db); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(db)
		if err != nil {
			target, _ = os.Readlink(db)
		}
		return fmt.Errorf("%s is a symbolic link to %s: restore into the directory that holds the database (--data-dir %s, when it is named scepter.db there), or put the database in place of the link first; %s is unchanged",
			db, target, shellQuote(filepath.Dir(target)), db)
	}
	// The lock serve takes, for the whole restore: a server would go on
	// writing to the replaced file, and its commits would be lost.
	unlock, err := lockDataDir(sf.dataDir)
	var running *serveRunningError
	switch {
	case errors.Is(err, errNoLocks):
		fmt.Fprintf(e.stderr, "scepter: warning: %v; make sure no 'scepter serve' runs on %s\n", err, sf.dataDir)
	case errors.As(err, &running) && running.command != "serve" && running.command != "":
		return err // another restore: lockDataDir names it
	case errors.As(err, &running):
		// lockDataDir's advice is for a second server (and a lock file
		// that names no command is most likely an older server's).
		return fmt.Errorf("a 'scepter serve'%s is running on %s: stop scepter serve first; a restore replaces the database under it", running.holder, sf.dataDir)
	case err != nil:
		return err
	}
	defer unlock()
	// And no other command may have the database open (certs revoke,
	// challenge new, ...): its writes would go to the replaced file.
	unlockStore, err := lockStore(sf.dataDir)
	switch {
	case errors.Is(err, errNoLocks):
		// Said above already, for serve.
	case err != nil:
		return fmt.Errorf("%w; %s is unchanged", err, db)
	}
	defer unlockStore()
	// The file alone is restored: a log beside it holds commits it lacks
	// (or, a rollback journal, the undo of one cut short). SQLite looks
	// for it beside the file a symbolic link names.
	if log := logBeside(in); log != "" {
		return fmt.Errorf("%s has a log beside it (%s) holding commits the file lacks, or undoing one cut short: take the backup with 'scepter store backup' (or sqlite3's .backup); %s is unchanged", in, log, db)
	}

	removeRestoreLeftovers(e, filepath.Dir(db))
	tmp, err := copyBeside(in, db, restoreTempPrefix+"*")
	if err != nil {
		return fmt.Errorf("--in %s: %w", in, err)
	}
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	facts, err := sqlite.Inspect(ctx, tmp)
	if err != nil {
		return fmt.Errorf("--in %s cannot be restored: %w; %s is unchanged", in, err, db)
	}
	rootCert, err := checkBackupCA(sf.dataDir, in, facts)
	if err != nil {
		return fmt.Errorf("%w; %s is unchanged", err, db)
	}
	behind, err := storeBehindMarks(sf.dataDir, facts)
	if err != nil {
		return fmt.Errorf("%w; %s is unchanged", err, db)
	}
	trail := checkBackupTrail(ctx, tmp)
	trailWarning := trail.warning(sf.dataDir)
	if trail.headBroken != nil {
		// serve does not start on such a trail and every change is
		// refused, into a new data directory as over a database: a
		// restore that put it in place would end in a dead end.
		why := "'scepter serve' does not start on such a trail, and every change (an enrollment, a revocation) is refused, as each is recorded in it"
		if _, err := os.Lstat(db); err == nil {
			return fmt.Errorf("--in %s cannot be restored over %s: %s: %s, and what a restore carries forward from the database it replaces is recorded in it too; %s is unchanged: restore a backup whose audit trail verifies (one taken before; docs/deployment.md, Backups)",
				in, db, trail.unchainable(), why, db)
		}
		return fmt.Errorf("--in %s cannot be restored into %s: %s: %s; nothing was restored: restore a backup whose audit trail verifies (one taken before; docs/deployment.md, Backups)",
			in, sf.dataDir, trail.unchainable(), why)
	}

	kept := ""
	if _, err := os.Stat(db); err == nil {
		if kept, err = keepDatabase(ctx, e, db, pki.SystemClock{}.Now()); err != nil {
			return fmt.Errorf("keeping the current database: %w; %s is unchanged", err, db)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database: %w", err)
	}
	now := pki.SystemClock{}.Now()
	carried, carryErr := carryForward(ctx, tmp, kept, rootCert, now)
	if carryErr != nil && kept != "" {
		// Nothing was replaced: the database is in place with every
		// commit, and a copy of it would only be one more to explain.
		removeKept(kept)
	}
	if errors.Is(carryErr, store.ErrAuditTampered) && trail.problem != "" {
		// What is carried forward is recorded with its event, and
		// nothing can be chained to that trail (nor would serve start on
		// it); restored into a new data directory, it would not start
		// either.
		return fmt.Errorf("--in %s cannot be restored over %s: %s, and what a restore carries forward from the database it replaces is recorded in that trail; %s is unchanged: restore a backup whose audit trail verifies (one taken before)",
			in, db, trail.unchainable(), db)
	}
	if carryErr != nil && kept != "" {
		return fmt.Errorf("%w; %s is unchanged", carryErr, db)
	} else if carryErr != nil {
		return fmt.Errorf("--in %s: %w; nothing was restored", in, carryErr)
	}
	lacks := compareWithKept(ctx, tmp, kept)
	// The replaced database's log and index go before the new file comes:
	// SQLite would replay that log onto it. Its commits are in the kept
	// copy. A crash until the rename leaves the old database in place,
	// whole; after it, the new one.
	for _, f := range []string{db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the replaced database's %s: %w (the database is unchanged, and kept in %s)", filepath.Base(f), err, kept)
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("putting the backup in place: %w (the database is unchanged, and kept in %s)", err, kept)
	}
	tmp = ""
	if err := syncDir(filepath.Dir(db)); err != nil {
		return fmt.Errorf("the backup is in place, but its directory could not be synced: %w", err)
	}

	fmt.Fprintf(e.stdout, "Restored %s to %s: schema version %d, %d certificate(s).\n", in, db, facts.SchemaVersion, facts.Certificates)
	if trailWarning != "" {
		fmt.Fprintln(e.stderr, "scepter: warning: "+trailWarning)
	}
	if want := latestSchema(); facts.SchemaVersion < want {
		fmt.Fprintf(e.stdout, "The restored file is at schema version %d, as the backup was, not migrated to this scepter's %d: an older scepter at version %d serves it as it is (the way back from an upgrade), and 'scepter serve' of this version migrates it when it starts; this version's other commands refuse it until then (run those named below with the scepter that serves it).\n",
			facts.SchemaVersion, want, facts.SchemaVersion)
	}
	if kept != "" {
		fmt.Fprintf(e.stdout, "The database it replaced, with every commit, is kept in %s: scepter never removes it, and it holds what was recorded after the backup too.\n", kept)
	}
	carried.report(e)
	lacks.report(e)
	// The root's CRLs carried forward close its gap when they reach the
	// number this data directory published.
	root, rootID := "", ""
	if rootCert != nil {
		root, rootID = ca.Fingerprint(rootCert), issuerIDOf(rootCert)
		behind = behind.withCarried(rootID, carried.carried.NewestRootCRL())
	}
	// What must come before serve starts, in the Next line.
	first := ""
	if root == "" && len(facts.CARoots) > 0 {
		fmt.Fprintf(e.stdout, "%s holds no CA, and the restored store records one: 'scepter serve' starts on it only with that CA's keys.\n",
			filepath.Join(sf.dataDir, "ca"))
		first = fmt.Sprintf("put the CA's keys back (scepter ca import-keys --data-dir %s --in FILE, the export of that CA), then ", shellQuote(sf.dataDir))
	}
	numbersDir := filepath.Join(sf.dataDir, crl.NumbersDir)
	if _, err := os.Stat(numbersDir); errors.Is(err, fs.ErrNotExist) && len(facts.NewestCRLs) > 0 {
		// A new data directory: nothing tells serve that the store is
		// behind what relying parties have seen.
		fmt.Fprintf(e.stdout, "%s is missing: before serve starts, copy it from the old data directory, or write the highest CRL numbers relying parties may have seen into it (docs/deployment.md, Restoring); without it a store older than the CRLs published is not noticed, and their numbers are given again.\n", numbersDir)
	}
	// The flags that located the store, for the commands printed: the
	// config file holds the site's listen addresses and profiles too, and
	// serve started without it would not be the site's server.
	d := shellQuote(sf.dataDir)
	if sf.configFile != "" {
		d += " --config " + shellQuote(sf.configFile)
	}
	if len(behind) == 0 {
		fmt.Fprintf(e.stdout, "Next: %sstart scepter serve --data-dir %s.\n", first, d)
		return nil
	}
	// The root's issuer ID is its fingerprint's hex. Its CRL is signed by
	// hand, never by serve, so --store-restored alone does not bring it
	// above its mark: serve refuses without the flag, and with it serves
	// no root CRL, until 'ca root crl --store-restored' signs one. (Only
	// when the carry forward could not bring the newer ones.)
	rootBehind := root != "" && behind.has(rootID)
	fmt.Fprintf(e.stdout, "The restored store is older than the CRLs this data directory published (%s): %s.\n",
		numbersDir, strings.Join(behind.lines(rootID), "; "))
	signRoot := fmt.Sprintf("sign the root's next CRL where the root key is: scepter ca root crl --data-dir %s --store-restored, listing again the issuing CAs the root revoked after the backup "+
		"with --revoke ISSUER-ID --reason R (the root CRL relying parties last fetched lists them: openssl crl -inform DER -in ROOT.crl -noout -text), and --root-key FILE when the root key is offline", d)
	if rootBehind && len(behind) == 1 {
		if facts.SchemaVersion < latestSchema() {
			// This version's ca root crl refuses the store until serve
			// has migrated it.
			fmt.Fprintf(e.stdout, "Next: %sstart scepter serve --data-dir %s --store-restored, which migrates the store (without the flag serve refuses it: its root CRL is older than one signed before; with it, serve serves no root CRL until the next is signed); then %s. Until then the issuing CAs the root revoked after the backup count as valid (their certificates authenticate, OCSP answers good for them): keep the server from clients meanwhile.\n",
				first, d, signRoot)
			return nil
		}
		fmt.Fprintf(e.stdout, "Next: %s%s; then start scepter serve --data-dir %s. Until that CRL is signed, serve refuses this store without --store-restored, and with it serves no root CRL: the store's is older than one relying parties may hold.\n",
			first, signRoot, d)
		return nil
	}
	serveStep := fmt.Sprintf("start scepter serve --data-dir %s --store-restored, once: without it serve refuses this store, for OCSP would answer good, and the CRL leave out, every certificate revoked after the backup; its next CRLs are numbered above those published", d)
	if rootBehind && facts.SchemaVersion >= latestSchema() {
		// The root's first: until it is signed, the issuing CAs the root
		// revoked after the backup would count as valid once serve runs.
		fmt.Fprintf(e.stdout, "Next: %s%s; then %s.\n", first, signRoot, serveStep)
	} else {
		fmt.Fprintf(e.stdout, "Next: %s%s.\n", first, serveStep)
	}
	fmt.Fprintln(e.stdout, "Then make again what the backup lacks (docs/deployment.md, Restoring): the revocations made after it (scepter certs revoke SERIAL --reason R), and those of certificates issued after it (scepter certs revoke --cert FILE --reason R).")
	if kept != "" && !lacks.any() {
		fmt.Fprintf(e.stdout, "The kept copy lists them: %s.\n", keptListing)
	}
	if rootBehind && facts.SchemaVersion < latestSchema() {
		fmt.Fprintf(e.stdout, "The root's CRL is behind too, and serve serves none until its next is signed (and starts only with --store-restored): %s. Until then the issuing CAs the root revoked after the backup count as valid: keep the server from clients meanwhile.\n", signRoot)
	}
	return nil
}

// latestSchema is the newest schema version of this binary's SQLite store;
// 0 when its migrations cannot be read (a build error), which names none
// older.
func latestSchema() int {
	v, _ := migrate.Latest(sqlite.Migrations())
	return v
}

// backupTrail is what a walk of a backup's audit trail, as `audit
// verify` does it, found: problem is "" when it verifies or predates the
// chain (or could not be checked: then uncheckable says why).
type backupTrail struct {
	problem     string
	wiped       bool  // no record at all, though the backup holds certificates
	headBroken  error // audit.HeadIntact's refusal: nothing can be chained to the trail
	uncheckable error
}

// checkBackupTrail walks the audit trail of the backup (its copy at path).
func checkBackupTrail(ctx context.Context, path string) backupTrail {
	trail, err := sqlite.OpenFileTrail(ctx, path)
	if errors.Is(err, sqlite.ErrNoChain) {
		return backupTrail{}
	}
	if err != nil {
		return backupTrail{uncheckable: err}
	}
	defer trail.Close()
	// serve's own check at start: a trail it refuses is one no restore
	// can put in place either.
	var headBroken error
	if err := audit.HeadIntact(ctx, trail); errors.Is(err, store.ErrAuditTampered) {
		headBroken = err
	} else if err != nil {
		return backupTrail{uncheckable: err}
	}
	rep, err := audit.VerifyTrail(ctx, trail)
	switch {
	case err != nil:
		return backupTrail{headBroken: headBroken, uncheckable: err}
	case !rep.OK():
		first, err := trail.AuditChain(ctx, 0, 1)
		return backupTrail{problem: printable(rep.Problem.Error()), wiped: err == nil && len(first) == 0, headBroken: headBroken}
	}
	return backupTrail{headBroken: headBroken}
}

// warning says what is wrong with the trail of a backup that is restored
// all the same (it may be all there is), before the trail is written on:
// "" when nothing is.
func (b backupTrail) warning(dataDir string) string {
	more := fmt.Sprintf("run scepter audit verify --data-dir %s for more", shellQuote(dataDir))
	switch {
	case b.uncheckable != nil:
		return fmt.Sprintf("the backup's audit trail could not be checked (%v): %s", b.uncheckable, more)
	case b.problem != "":
		return fmt.Sprintf("the backup's audit trail does not verify, it was changed outside scepter: %s; restored all the same, as the backup may be all there is: %s",
			b.problem, more)
	}
	return ""
}

// unchainable says what makes the backup's trail one that nothing can be
// chained to.
func (b backupTrail) unchainable() string {
	if b.problem == "" && b.headBroken != nil {
		return fmt.Sprintf("the backup's audit trail was changed outside scepter so that nothing can be chained to it (%s)", printable(b.headBroken.Error()))
	}
	if b.wiped {
		return fmt.Sprintf("the backup's audit trail was wiped whole, changed outside scepter (%s)", b.problem)
	}
	return fmt.Sprintf("the backup's audit trail was changed outside scepter so that nothing can be chained to it (%s)", b.problem)
}

// removeKept removes the copy keepDatabase made of a database that was not
// replaced after all (links to it, or copies: the database itself stays).
func removeKept(kept string) {
	os.Remove(kept + "-wal")
	os.Remove(kept)
}

// keptListing says how to list what the kept copy recorded after the
// backup.
const keptListing = "copy it as scepter.db into an empty directory D and run scepter audit list --data-dir D --limit 0 --type certificate.revoked (and --type certificate.issued, --type certificate.unheld)"

// storeLacks compares the restored store with the database it replaced.
type storeLacks struct {
	kept, restored sqlite.Summary
}

// compareWithKept reads both summaries; with no kept database, or one
// that cannot be read, there is nothing to compare (the zero storeLacks).
func compareWithKept(ctx context.Context, restored, kept string) storeLacks {
	if kept == "" {
		return storeLacks{}
	}
	k, err := sqlite.Summarize(ctx, kept)
	if err != nil {
		return storeLacks{}
	}
	r, err := sqlite.Summarize(ctx, restored)
	if err != nil {
		return storeLacks{}
	}
	return storeLacks{kept: k, restored: r}
}

func (l storeLacks) any() bool {
	return l.kept.Certificates > l.restored.Certificates || l.kept.Revoked > l.restored.Revoked ||
		l.kept.NewestIssued.After(l.restored.NewestIssued)
}

// report says what the restored store lacks that the replaced one holds,
// and what to do about it.
func (l storeLacks) report(e env) {
	if !l.any() {
		return
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "none"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(e.stdout, "The restored store lacks what was recorded after the backup: the database it replaced holds %d certificate(s), %d of them revoked, the newest issued %s; the restored store %d, %d revoked, the newest issued %s.\n",
		l.kept.Certificates, l.kept.Revoked, when(l.kept.NewestIssued), l.restored.Certificates, l.restored.Revoked, when(l.restored.NewestIssued))
	fmt.Fprintln(e.stdout, "OCSP answers unknown for the certificates issued after the backup, and good for those revoked after it: revoke those again (scepter certs revoke SERIAL --reason R), revoke the ones issued after it that are in the field and must not stay valid (scepter certs revoke --cert FILE --reason R), lift again the holds lifted after it (scepter certs unhold SERIAL), and make again the API tokens and challenges handed out after it.")
	fmt.Fprintf(e.stdout, "The kept copy lists them: %s.\n", keptListing)
}

// carryOutcome is what a restore did about what may only move forward
// (sqlite.CarryForward): carried from the replaced database, or, with
// none to read, what the backup may bring back.
type carryOutcome struct {
	carried    sqlite.Carried
	done       bool
	unreadable error
	// older: the backup is at an older schema, restored as it is (a
	// carry forward would migrate it, and the older binary refuses that).
	older   *migrate.TooOldError
	exposed sqlite.Resurrectable
}

// carryForward carries into the restored copy tmp, before it is put in
// place, what the kept database revoked, used up or removed since the
// backup, and the root CRLs signed since (root, the data directory's root
// certificate, checks them; nil: none is carried); with no kept database,
// one that cannot be read, or a backup at an older schema than this
// binary's, it counts what the backup may bring back instead.
func carryForward(ctx context.Context, tmp, kept string, root *x509.Certificate, now time.Time) (carryOutcome, error) {
	var o carryOutcome
	if kept != "" {
		c, err := sqlite.CarryForward(ctx, tmp, kept, root, now, cliActor())
		switch {
		case err == nil:
			return carryOutcome{carried: c, done: true}, nil
		case errors.Is(err, sqlite.ErrKeptUnreadable):
			o.unreadable = err
		case errors.As(err, &o.older):
		default:
			return o, err
		}
	}
	exposed, err := sqlite.CountResurrectable(ctx, tmp, now)
	if err != nil {
		return o, err
	}
	o.exposed = exposed
	return o, nil
}

// report says what was carried forward, or warns of what the backup
// brings back.
func (o carryOutcome) report(e env) {
	if o.done {
		c := o.carried
		var parts []string
		add := func(n int, what string) {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, what))
			}
		}
		add(c.TokensRevoked, "API token(s) revoked")
		add(c.ChallengesUsedUp, "one-time challenge(s) used up or locked")
		add(c.ChallengesRemoved, "one-time challenge(s) removed")
		add(c.ESTUsersRemoved, "EST user(s) removed")
		add(c.ESTPasswords, "EST password(s) changed")
		add(c.ESTProfiles, "EST user(s) given their newer profile binding")
		add(c.UsersRemoved, "console user(s) removed")
		add(c.UsersUpdated, "console user(s) given their newer role, password or lockout")
		add(c.Nonces, "SCEP nonce(s) remembered")
		add(c.SessionsDropped, "console session(s) dropped")
		if len(c.RootCRLs) > 0 {
			parts = append(parts, fmt.Sprintf("the root CRL(s) signed after the backup, number %s (each checked against the root certificate), with the issuing CAs they list as revoked",
				joinNumbers(c.RootCRLs)))
		}
		if len(parts) == 0 {
			parts = []string{"nothing had changed"}
		}
		fmt.Fprintf(e.stdout, "Carried forward from the replaced database what only moves forward (audit event %s): %s.\n",
			sqlite.EventRestoreCarriedForward, strings.Join(parts, ", "))
		var lost []string
		name := func(names []string, what, again string) {
			if len(names) > 0 {
				lost = append(lost, fmt.Sprintf("%s %s (%s)", what, strings.Join(printableAll(names), ", "), again))
			}
		}
		name(c.TokensLost, "API token(s)", "scepter admin token new")
		name(c.UsersLost, "console user(s)", "scepter admin user add")
		name(c.ESTUsersLost, "EST user(s)", "scepter est user add")
		if len(lost) > 0 {
			fmt.Fprintf(e.stdout, "Made after the backup and not in the restored store, make them again if they are still wanted: %s.\n", strings.Join(lost, "; "))
		}
		for _, r := range c.RootCRLsRefused {
			fmt.Fprintf(e.stderr, "scepter: warning: the replaced database's root CRL %d was not carried forward: %s\n", r.Number, printable(r.Why))
		}
		return
	}
	x := o.exposed
	if x == (sqlite.Resurrectable{}) {
		return
	}
	why := "there is no database it replaces to carry them forward from"
	switch {
	case o.older != nil:
		why = fmt.Sprintf("the backup is at schema version %d, older than this scepter's %d, and is restored as it is: nothing was carried forward from the database it replaces (that would migrate it)",
			o.older.Have, o.older.Want)
	case o.unreadable != nil:
		why = fmt.Sprintf("the database it replaces could not be read (%v)", o.unreadable)
	}
	fmt.Fprintf(e.stderr, "scepter: warning: %s, so the backup brings back, as they were when it was taken, %d API token(s) not revoked, %d one-time challenge(s) not used, %d EST user(s) and %d console user(s) with their passwords: "+
		"before the server is reachable, revoke every token revoked since (scepter admin token revoke ID), delete the challenges handed out before the backup (console, or DELETE /api/v1/challenges/ID), remove the users removed since (scepter admin user remove, scepter est user remove) and set again the passwords changed since\n",
		why, x.Tokens, x.Challenges, x.ESTUsers, x.Users)
}

// logBeside names a non-empty write-ahead log or rollback journal beside
// the database file path names, or beside the file it links to; "" when
// there is none.
func logBeside(path string) string {
	names := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		names = append(names, real)
	}
	for _, name := range names {
		for _, suffix := range []string{"-wal", "-journal"} {
			if fi, err := os.Stat(name + suffix); err == nil && fi.Size() > 0 {
				return name + suffix
			}
		}
	}
	return ""
}

// checkBackupCA refuses a backup that records another CA than the data
// directory holds, as a server compares its CA with the store's
// (cashare.Syncer.Sync: every generation recorded has this root). It
// returns the data directory's root certificate, nil when it holds none.
func checkBackupCA(dataDir, in string, facts sqlite.FileFacts) (*x509.Certificate, error) {
	path := filepath.Join(dataDir, "ca", ca.RootCertFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the data directory's CA: %w", err)
	}
	certs, err := keys.ParseCertsPEM(data)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("the data directory's CA: %s holds no certificate: %v", path, err)
	}
	have := ca.Fingerprint(certs[0])
	for _, r := range facts.CARoots {
		if r != have {
			return nil, fmt.Errorf("%w: --in %s is a backup of the CA with root %s, and %s holds root %s: restore a backup of this CA, or restore it into that CA's data directory",
				cashare.ErrNotThisCA, in, r, path, have)
		}
	}
	if len(facts.CARoots) > 0 || len(facts.Issuers) == 0 {
		return certs[0], nil
	}
	// A file that records no CA (before schema version 9): its
	// certificates' issuers say whose it is.
	ours, err := caCertIDs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("the data directory's CA: %w", err)
	}
	var foreign []string
	for _, id := range facts.Issuers {
		if !ours[id] {
			foreign = append(foreign, id)
		}
	}
	if len(foreign) > 0 {
		shown := make([]string, len(foreign))
		for i, id := range foreign {
			shown[i] = id[:min(16, len(id))]
		}
		return nil, fmt.Errorf("%w: --in %s records no CA, and its certificates were issued by %d issuer(s) that are none of %s's CA certificates (issuer %s): it is a store of another CA; restore a backup of this CA, or restore it into that CA's data directory",
			cashare.ErrNotThisCA, in, len(foreign), filepath.Dir(path), strings.Join(shown, ", "))
	}
	return certs[0], nil
}

// caCertIDs are the issuer IDs of every certificate in the CA directory
// dir (root, issuing CAs of every generation, RAs): the issuers this
// data directory's certificates name.
func caCertIDs(dir string) (map[string]bool, error) {
	ids := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".crt") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		certs, err := keys.ParseCertsPEM(data)
		if err != nil {
			return nil // not a certificate file: no issuer of this CA
		}
		for _, c := range certs {
			ids[issuerIDOf(c)] = true
		}
		return nil
	})
	return ids, err
}

// behindMarks are the issuers whose newest CRL in a restored store is
// numbered below the highest this data directory published.
type behindMarks []behindMark

type behindMark struct {
	issuerID          string
	stored, published int64
}

// lines says, per issuer, how far the store is behind; rootID (may be "")
// is named as the root, whose CRLs 'scepter ca root crl' signed.
func (b behindMarks) lines(rootID string) []string {
	var out []string
	for _, m := range b {
		stored := fmt.Sprintf("the store's newest CRL is number %d", m.stored)
		if m.stored == 0 {
			stored = "the store has no CRL"
		}
		what := "issuer " + m.issuerID[:16]
		if m.issuerID == rootID {
			what = "the root (issuer " + m.issuerID[:16] + ")"
		}
		out = append(out, fmt.Sprintf("%s: %s, this data directory published number %d", what, stored, m.published))
	}
	return out
}

// withCarried is b once the root CRLs carried forward, the newest
// numbered newest, are in the store: the root (rootID) is behind no more
// when they reach its mark, and otherwise less far.
func (b behindMarks) withCarried(rootID string, newest int64) behindMarks {
	var out behindMarks
	for _, m := range b {
		if m.issuerID == rootID && newest > m.stored {
			if newest >= m.published {
				continue
			}
			m.stored = newest
		}
		out = append(out, m)
	}
	return out
}

// joinNumbers is numbers in decimal, comma-separated.
func joinNumbers(numbers []int64) string {
	s := make([]string, len(numbers))
	for i, n := range numbers {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

func (b behindMarks) has(id string) bool {
	for _, m := range b {
		if m.issuerID == id {
			return true
		}
	}
	return false
}

// storeBehindMarks compares DATA/crl-numbers with the restored store's
// newest CRLs, as serve's check (crl.Publisher.StoreBehind) will.
func storeBehindMarks(dataDir string, facts sqlite.FileFacts) (behindMarks, error) {
	dir := filepath.Join(dataDir, crl.NumbersDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the CRL numbers published: %w", err)
	}
	numbers := crl.NewNumbers(dir)
	var out behindMarks
	for _, ent := range entries {
		if !ent.Type().IsRegular() || strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		mark, err := numbers.Get(ent.Name())
		if err != nil {
			return nil, err
		}
		if stored := facts.NewestCRLs[ent.Name()]; mark > stored {
			out = append(out, behindMark{issuerID: ent.Name(), stored: stored, published: mark})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].issuerID < out[j].issuerID })
	return out, nil
}

// keepDatabase keeps the database under a name of its own beside it,
// scepter.db.before-restore-TIME, which it returns, with every commit:
// the database and its write-ahead log are given the kept names first
// (second links to the same files; copies where links are not to be
// had), and then the log is folded into the database. The database stays
// in place until the restored one is renamed over it. A log that cannot
// be folded (a database too damaged to open) stays beside the kept copy,
// under the name SQLite looks for, so that opening the copy replays it.
func keepDatabase(ctx context.Context, e env, db string, now time.Time) (kept string, err error) {
	base := db + ".before-restore-" + now.UTC().Format("20060102T150405Z")
	for i := 1; kept == ""; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s.%d", base, i)
		}
		if _, err := os.Lstat(name + "-wal"); err == nil {
			continue
		}
		switch err := linkOrCopy(db, name); {
		case err == nil:
			kept = name
		case errors.Is(err, fs.ErrExist) && i < 100:
		default:
			return "", err
		}
	}
	keptLog := kept + "-wal"
	defer func() {
		if err != nil {
			os.Remove(keptLog)
			os.Remove(kept)
		}
	}()
	if _, err := os.Stat(db + "-wal"); err == nil {
		if err := linkOrCopy(db+"-wal", keptLog); err != nil {
			return "", fmt.Errorf("keeping its write-ahead log: %w", err)
		}
	}
	if foldErr := sqlite.FoldWAL(ctx, db); foldErr != nil {
		if _, err := os.Stat(keptLog); err == nil {
			fmt.Fprintf(e.stderr, "scepter: warning: the replaced database's write-ahead log could not be folded into it (%v): it is kept beside the copy, as %s\n",
				foldErr, keptLog)
		}
	} else if fi, err := os.Stat(keptLog); err == nil && fi.Size() == 0 {
		// A second link to the log the checkpoint emptied: the kept
		// copy, a link to the database, holds it all now. (A copied log
		// stays, for the copied database lacks what it holds.)
		os.Remove(keptLog)
	}
	if err := syncDir(filepath.Dir(db)); err != nil {
		return "", err
	}
	return kept, nil
}

// linkOrCopy gives src the name dst, which must not exist (fs.ErrExist):
// a hard link, or a synced copy where the file system makes none.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	from, err := os.Open(src)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(to, from); err != nil {
		to.Close()
		os.Remove(dst)
		return err
	}
	if err := to.Sync(); err != nil {
		to.Close()
		os.Remove(dst)
		return err
	}
	return to.Close()
}

// copyBeside copies src to a new file (mode 0600, synced) beside path,
// named after pattern (os.CreateTemp), and returns its name.
func copyBeside(src, path, pattern string) (string, error) {
	// Opened without blocking and checked open: a FIFO would wait for a
	// writer, with both data directory locks held.
	from, err := filetrust.OpenRegular(src)
	if err != nil {
		return "", err
	}
	defer from.Close()
	to, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(to, from)
	if err == nil {
		err = to.Sync()
	}
	if cerr := to.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(to.Name())
		return "", err
	}
	return to.Name(), nil
}

// restoreTempPrefix names the copy a restore checks before renaming it
// into place.
const restoreTempPrefix = ".scepter.db.restore-"

// removeRestoreLeftovers removes the copies (and any SQLite files beside
// them) that a restore killed before its rename left in dir: under serve's
// lock no other restore is using them, and each may be as big as the
// database.
func removeRestoreLeftovers(e env, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), restoreTempPrefix) || !ent.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		if err := os.Remove(path); err != nil {
			fmt.Fprintf(e.stderr, "scepter: warning: a copy an earlier restore left, %s, could not be removed: %v\n", path, err)
			continue
		}
		fmt.Fprintf(e.stderr, "scepter: removed %s, a copy an earlier restore left when it was stopped\n", path)
	}
}

// syncFile flushes a file's contents to disk.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the names in dir (a rename, a new link) survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// printableAll is printable of each of names.
func printableAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = printable(n)
	}
	return out
}
