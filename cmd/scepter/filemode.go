package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/scepter/scepter/internal/config"
)

// secretFileFlags name a file that holds a secret: a challenge, a
// password, an HMAC key, a passphrase. (--pkcs11-pin-file is stricter,
// refused when group or others have any access: internal/keys.)
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
		return usageError{fmt.Sprintf("%s %s has mode %04o: group or others may change %s; run: chmod go-w %s", setting, path, perm, changes, path)}
	}
	if uid, ok := fileOwner(fi); ok && uid != 0 && uid != os.Geteuid() {
		me, trusted := userName(os.Geteuid()), "root"
		if os.Geteuid() != 0 {
			trusted = me + " or root"
		}
		return usageError{fmt.Sprintf("%s %s belongs to user %s (uid %d), not to %s: that user may change %s; run: chown %s %s",
			setting, path, userName(uid), uid, trusted, changes, me, path)}
	}
	for _, dir := range replaceableFrom(path) {
		if di, err := os.Stat(dir); err == nil && di.Mode().Perm()&0o022 != 0 && di.Mode()&os.ModeSticky == 0 {
			return usageError{fmt.Sprintf("%s %s is in directory %s, which has mode %04o: group or others may replace the file, and so change %s; move the file, or run: chmod go-w %s",
				setting, path, dir, di.Mode().Perm(), changes, dir)}
		}
	}
	if perm&0o004 != 0 {
		if held := secret(); held != "" {
			fmt.Fprintf(e.stderr, "scepter: warning: %s %s has mode %04o: others may read %s; run: chmod o-r %s\n", setting, path, perm, held, path)
		}
	}
	return nil
}

// replaceableFrom is the directories whose writers may replace what path
// names: the one that holds path, and, when path leads through symbolic
// links, the one that holds the file they lead to.
func replaceableFrom(path string) []string {
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != filepath.Dir(path) {
		dirs = append(dirs, filepath.Dir(real))
	}
	return dirs
}

// notOurs names the owner of fi when it is not this process's effective
// user ("" when it is, or where owners are unknown): whoever owns the data
// directory can rename and replace what is in it, the CA's keys included.
func notOurs(fi os.FileInfo) string {
	uid, ok := fileOwner(fi)
	if !ok || uid == os.Geteuid() {
		return ""
	}
	return fmt.Sprintf("uid %d, not this process's uid %d", uid, os.Geteuid())
}

// userName is the name of a user id, or the id when it has no name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
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
			if u, err := url.Parse(s); err == nil && u.User != nil {
				if _, set := u.User.Password(); set {
					held = append(held, config.KeyName(name))
				}
			}
		}
	}
	slices.Sort(held)
	return held
}
