package main

import (
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/filetrust"
)

// secretFileFlags name a file that holds a secret: a challenge, a
// password, an HMAC key, a passphrase. (--pkcs11-pin-file is stricter,
// refused when group or others have any access, and for its owner and
// directory as these are: internal/keys.)
var secretFileFlags = []string{
	"challenge-file",
	"est-password-file",
	"ndes-password-file",
	"notify-webhook-secret-file",
	"passphrase-file",
	"password-file",
	"root-key-passphrase-file",
	"smtp-password-file",
	"webhook-secret-file",
}

// secretSettings are the settings whose value is itself a secret, so a
// config file that sets one is as secret as a secret file.
var secretSettings = []string{"challenge", "ndes-password", "est-password"}

// urlSettings are the settings that take a URL, which may carry a
// password (postgres://user:password@host/db).
var urlSettings = []string{"store", "smtp-url", "webhook-url", "notify-webhook-url"}

// checkFileModes refuses, as a usage error (exit 2), a config file or a
// secret file that another user may change (checkFileMode): whoever can
// change the config file decides which clients are trusted and where
// secrets go, and whoever can change a secret file sets the secret. It
// warns on stderr when others may read a secret file, or a config file
// that holds a secret, but lets it pass: a read-only secret mount
// (Kubernetes' 0644) is common and was never refused.
func checkFileModes(e env, fs *flag.FlagSet) error {
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		path := f.Value.String()
		held := func() string {
			if keys := configSecrets(path); len(keys) > 0 {
				return "the secrets it holds (" + strings.Join(keys, ", ") + ")"
			}
			return ""
		}
		if err := checkFileMode(e, "--config", path, "it, and with it which clients are trusted and where secrets go", held); err != nil {
			return err
		}
	}
	for _, name := range secretFileFlags {
		if f := fs.Lookup(name); f != nil && f.Value.String() != "" {
			if err := checkSecretFileMode(e, "--"+name, f.Value.String()); err != nil {
				return err
			}
		}
	}
	// The trust anchors of manufacturer certificates: whoever can change
	// them makes certificates that enroll (r46).
	if f := fs.Lookup("est-client-ca-file"); f != nil && f.Value.String() != "" {
		if err := checkFileMode(e, "--est-client-ca-file", f.Value.String(), "which manufacturer certificates may enroll", func() string { return "" }); err != nil {
			return err
		}
	}
	// A given HTTPS key as the generated one (tls/server.key), but that a
	// group may read it (Debian's ssl-cert group reads /etc/ssl/private).
	if f := fs.Lookup("tls-key"); f != nil && f.Value.String() != "" {
		path := f.Value.String()
		if err := checkFileMode(e, "--tls-key", path, "the server's HTTPS key", func() string { return "" }); err != nil {
			return err
		}
		if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o004 != 0 {
			return usageError{fmt.Sprintf("--tls-key %s has mode %04o: any user may read the server's HTTPS key; run: chmod o-rwx %s", path, fi.Mode().Perm(), shellQuote(path))}
		}
	}
	return nil
}

// checkSecretFileMode is checkFileMode for a file that holds a secret;
// setting names it in the messages ("--challenge-file").
func checkSecretFileMode(e env, setting, path string) error {
	return checkFileMode(e, setting, path, "the secret", func() string { return "the secret" })
}

// checkFileMode refuses the file setting names when another user than
// us or root may change it (changes says what they could change): when
// group or others may write it, when another user owns it, or when group
// or others may write the directory that holds it, or that holds the
// symbolic link path is, without the sticky bit (they may replace the
// file, or the link). It warns when others may read it and secret says
// what secret it holds ("" for none). What is not a regular file
// (missing, a directory, a pipe) is left to whoever reads it. On Windows
// the mode bits say nothing about access and nothing is checked, as for
// the PKCS#11 PIN file.
func checkFileMode(e env, setting, path, changes string, secret func() string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return usageError{fmt.Sprintf("%s %s has mode %04o: group or others may change %s; run: chmod go-w %s", setting, path, perm, changes, shellQuote(path))}
	}
	if err := filetrust.Check(setting, path, changes); err != nil {
		return usageError{err.Error()}
	}
	if perm&0o004 != 0 {
		if held := secret(); held != "" {
			// chmod 600, not o-r, which would leave it readable by its
			// group: a secret is for its owner alone.
			fmt.Fprintf(e.stderr, "scepter: warning: %s %s has mode %04o: others may read %s; run: chmod 600 %s\n", setting, path, perm, held, shellQuote(path))
		}
	}
	return nil
}

// notOurs names the owner of fi when it is not this process's effective
// user ("" when it is, or where owners are unknown): whoever owns the data
// directory can rename and replace what is in it, the CA's keys included.
func notOurs(fi os.FileInfo) string {
	uid, ok := filetrust.Owner(fi)
	if !ok || uid == os.Geteuid() {
		return ""
	}
	return fmt.Sprintf("uid %d, not this process's uid %d", uid, os.Geteuid())
}

// configSecrets lists the keys of the config file at path that hold a
// secret: a secret setting, or a URL with a password. A file that cannot
// be decoded lists none (config.Parse has read it already, so that does
// not happen).
func configSecrets(path string) []string {
	var raw map[string]toml.Primitive
	md, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return nil
	}
	var held []string
	for key, prim := range raw {
		name := strings.ReplaceAll(key, "_", "-")
		switch {
		case slices.Contains(secretSettings, name):
			held = append(held, config.KeyName(name))
		case slices.Contains(urlSettings, name):
			var s string
			if md.PrimitiveDecode(prim, &s) != nil {
				continue
			}
			if urlHoldsPassword(s) {
				held = append(held, config.KeyName(name))
			}
		}
	}
	slices.Sort(held)
	return held
}

// urlHoldsPassword reports whether a URL setting's value holds a
// password: in its user info, or as the value of a query parameter that
// names one (password=, libpq's sslpassword=, in any case or
// percent-encoding), the forms the banner hides (postgres.Redact). A
// value that does not parse holds one when it may: it has an '@' or
// names a password.
func urlHoldsPassword(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return strings.Contains(s, "@") || strings.Contains(strings.ToLower(s), "pass")
	}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			return true
		}
	}
	// Split by hand, as the PostgreSQL driver does: url.ParseQuery drops
	// a pair it cannot decode, which may be the password's.
	for _, pair := range strings.Split(u.RawQuery, "&") {
		key, _, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(key)
		if err != nil || strings.Contains(strings.ToLower(k), "password") {
			return true
		}
	}
	return false
}

// dataDirUse is how a command other than serve uses the data directory.
type dataDirUse int

const (
	// usesNoDataDir: it neither opens the store nor writes there.
	usesNoDataDir dataDirUse = iota
	// opensStore: it opens the store, which with SQLite in the data
	// directory may make files there (store.lock, scepter.db-wal,
	// scepter.db-shm) even to read.
	opensStore
	// writesDataDir: it writes files there (keys, certificates, CRL
	// numbers, the database), whatever the store.
	writesDataDir
)

// dataDirUseOf is how the command its flag set names ("ca rollover")
// uses the data directory; known is false for a command that takes no
// --data-dir, and for serve, which has rules of its own (secureDataDir).
func dataDirUseOf(command string) (use dataDirUse, known bool) {
	switch command {
	case "ca rollover", "ca import-keys", "ca renew-ra", "ca root crl", "store restore":
		return writesDataDir, true
	case "ca show", "ca export-keys", "ca root export",
		"certs list", "certs show", "certs revoke", "certs unhold",
		"challenge new", "challenge list",
		"requests list", "requests approve", "requests reject",
		"est user add", "est user list", "est user remove",
		"admin token new", "admin token list", "admin token revoke",
		"admin user add", "admin user list", "admin user remove",
		"audit list", "audit verify", "store backup":
		return opensStore, true
	case "notify test":
		return usesNoDataDir, true
	}
	return usesNoDataDir, false
}

// checkDataDirUser refuses (exit 2) a command that would make or change
// files in the data directory (dataDirUseOf) when another user than the
// directory's owner runs it, root included: what root makes there
// (ca/next by ca rollover, scepter.db by store restore, the database's
// -wal and -shm) belongs to root, and the server, which runs as the
// owner, cannot read it; it stops issuing at the next CA switch, or
// cannot start. With a PostgreSQL --store only the commands that write
// files there are refused. The directory's own contents are then checked
// as serve checks them (checkDataDirOwners). A data directory that is a
// file is refused too; one that is not there is left to the command,
// which says what is wrong.
func checkDataDirUser(fs *flag.FlagSet) error {
	use, _ := dataDirUseOf(fs.Name())
	flagValue := func(name string) string {
		if f := fs.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	dir := flagValue("data-dir")
	if fs.Lookup("data-dir") != nil && strings.TrimSpace(dir) == "" {
		return emptyDataDir(fs.Name())
	}
	if use == usesNoDataDir || use == opensStore && flagValue("store") != "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		return notADirectory(dir, "pass the --data-dir the server uses")
	}
	if uid, ok := filetrust.Owner(fi); ok && uid != os.Geteuid() {
		owner, me := filetrust.UserName(uid), filetrust.UserName(os.Geteuid())
		what := "the files it writes there would belong to " + me + ", and the server, which runs as " + owner + ", could not read them"
		if use == opensStore {
			what = "opening the database may make files there (scepter.db-wal, scepter.db-shm, store.lock) that would belong to " + me +
				", and the server, which runs as " + owner + ", could not open the database"
		}
		return usageError{fmt.Sprintf("--data-dir %s belongs to user %s (uid %d), not to %s, who runs 'scepter %s': %s; run it as %s, with the same arguments: sudo -u %s scepter %s … (or runuser -u %s -- scepter %s …)",
			dir, owner, uid, me, fs.Name(), what, owner, owner, fs.Name(), owner, fs.Name())}
	}
	return checkDataDirOwners(dir)
}

// emptyDataDir refuses (exit 2) an empty --data-dir (data_dir = "" in
// --config, SCEPTER_DATA_DIR=): every path in it would be taken relative
// to the working directory, and a message naming it would suggest a
// command that is refused in turn. serve makes the directory it is given;
// every other command reads the one a server uses.
func emptyDataDir(command string) error {
	if command == "serve" {
		return usageError{"--data-dir is empty: give the directory scepter keeps its CA and store in (made when missing), or leave the flag out for the default (" + DefaultDataDir + ")"}
	}
	return usageError{"--data-dir is empty: pass the --data-dir the server uses, or leave the flag out for the default (" + DefaultDataDir + ")"}
}

// dataDirTrees are the parts of the data directory that only we (or
// root) may own, and what another owner could do with them.
var dataDirTrees = []struct{ name, changes string }{
	{"ca", "read or replace the CA's keys and certificates"},
	{"ocsp", "read or replace the OCSP responders' keys"},
	{"tls", "read or replace the HTTPS key"},
	{crl.NumbersDir, "lower the CRL numbers kept there, on which the check for a restored store relies"},
}

// dataDirFiles are the files at the top of the data directory that
// scepter opens to read and write.
var dataDirFiles = []string{"scepter.db", "scepter.db-wal", "scepter.db-shm", storeLockFile, serveLockFile}

// checkDataDirOwners refuses (exit 2), as checkFileMode refuses a config
// file, what in the data directory dir another user than us or root owns:
// the CA's directory and all it holds (the keys, whatever their mode, are
// readable by their owner; a directory's owner may replace what is in
// it), ocsp/, tls/ and crl-numbers/; what there, or in dataDirFiles, root
// owns and we (not root) cannot use (rootLeftover); and a data directory
// reached through a symbolic link, as its last component or earlier in
// its path, that sits in a directory group or others may write without
// the sticky bit (they could point it elsewhere). Entries are checked
// where symbolic links lead; what cannot be read is left to whoever reads
// it. dir's own owner is checked by the caller.
func checkDataDirOwners(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	dir = filepath.Clean(dir)
	if link, linkDir, perm, ok := unsafeLink(dir); ok {
		if abs, err := filepath.Abs(dir); err == nil && abs == link {
			return usageError{fmt.Sprintf("--data-dir %s is a symbolic link in directory %s, which has mode %04o: group or others may point it at another directory; give the real path (%s), or run: chmod go-w %s",
				dir, linkDir, perm, realPath(dir), shellQuote(linkDir))}
		}
		return usageError{fmt.Sprintf("--data-dir %s leads through symbolic link %s in directory %s, which has mode %04o: group or others may point it at another directory; give the real path (%s), or run: chmod go-w %s",
			dir, link, linkDir, perm, realPath(dir), shellQuote(linkDir))}
	}
	for _, name := range dataDirFiles {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			if err := rootLeftover(path, fi, true); err != nil {
				return err
			}
		}
	}
	for _, tree := range dataDirTrees {
		root := filepath.Join(dir, tree.name)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // missing or unreadable: left to whoever reads it
			}
			fi, err := os.Stat(path)
			if err != nil {
				return nil
			}
			if uid, foreign := filetrust.ForeignOwner(fi); foreign {
				chown := "chown "
				if fi.IsDir() {
					chown = "chown -R "
				}
				return usageError{fmt.Sprintf("%s belongs to user %s (uid %d), not to %s: that user may %s; run: %s%s %s",
					path, filetrust.UserName(uid), uid, filetrust.TrustedUsers(), tree.changes, chown, shellQuote(filetrust.UserName(os.Geteuid())), shellQuote(path))}
			}
			// Files there are replaced (written beside, then renamed),
			// so a file needs reading, its directory writing.
			return rootLeftover(path, fi, false)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rootLeftover refuses (exit 2) what in the data directory root owns and
// this process, not root, cannot use: read, and write too for a
// directory or where write is set. A command run as root (sudo scepter
// ca rollover, store restore) leaves such files behind; the service user
// then fails on a bare "permission denied", so the message names the
// chown that gives the entry back.
func rootLeftover(path string, fi os.FileInfo, write bool) error {
	uid, ok := filetrust.Owner(fi)
	if !ok || uid != 0 || os.Geteuid() == 0 {
		return nil
	}
	need := fs.FileMode(0o4) // read
	what := "read"
	if fi.IsDir() {
		need, what = 0o7, "read and write"
	} else if write {
		need, what = 0o6, "read and write"
	}
	if mayUse(fi)&need == need {
		return nil
	}
	return usageError{rootLeftoverMessage(path, fi.IsDir(), what)}
}

// rootLeftoverMessage says that root owns path, which this process
// cannot what ("read"), and the chown to run.
func rootLeftoverMessage(path string, dir bool, what string) string {
	me := filetrust.UserName(os.Geteuid())
	chown := "chown "
	if dir {
		chown = "chown -R "
	}
	return fmt.Sprintf("%s belongs to root, and %s (uid %d), who runs scepter, cannot %s it: a scepter command run as root likely left it; run as root: %s%s %s",
		path, me, os.Geteuid(), what, chown, shellQuote(me), shellQuote(path))
}

// mayUse is what of read (4), write (2) and search (1) this process may
// do to fi, which another user owns, by its mode: the group's bits when
// the file's group is one of ours, others' otherwise.
func mayUse(fi os.FileInfo) fs.FileMode {
	perm := fi.Mode().Perm()
	if gid, ok := filetrust.Group(fi); ok {
		groups, _ := os.Getgroups()
		if gid == os.Getegid() || slices.Contains(groups, gid) {
			return perm >> 3 & 0o7
		}
	}
	return perm & 0o7
}

// unsafeLink finds a symbolic link on the absolute form of path, as its
// last component or earlier, or on the path a link leads to, whose
// directory (perm) group or others may write without the sticky bit: they
// could point the link elsewhere. What cannot be looked at ends the
// search (the command then says what is wrong).
func unsafeLink(path string) (link, linkDir string, perm fs.FileMode, found bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", 0, false
	}
	cur := "/" // resolved so far: no links in it
	rest := strings.Split(abs, "/")
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		li, err := os.Lstat(next)
		if err != nil {
			return "", "", 0, false
		}
		if li.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", "", 0, false // a loop: the command says so
		}
		if di, err := os.Stat(cur); err == nil && filetrust.OthersMayReplace(di) {
			return next, cur, di.Mode().Perm(), true
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", "", 0, false
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return "", "", 0, false
}

// realPath is where path leads, or path when that cannot be told.
func realPath(path string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		return real
	}
	return path
}
