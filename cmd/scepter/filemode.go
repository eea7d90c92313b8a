package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
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
// secret file that group or others may write: whoever can change the
// config file decides which clients are trusted and where secrets go, and
// whoever can change a secret file sets the secret. It warns on stderr
// when others may read a secret file, or a config file that holds a
// secret, but lets it pass: a read-only secret mount (Kubernetes' 0644)
// is common and was never refused. Files are stat'ed, so a symbolic link
// is judged by the file it names; what is not a regular file (missing, a
// directory, a pipe) is left to the command that reads it. On Windows the
// mode bits say nothing about access and nothing is checked, as for the
// PKCS#11 PIN file.
func checkFileModes(e env, fs *flag.FlagSet) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		path := f.Value.String()
		if perm, ok := regularFilePerm(path); ok {
			if perm&0o022 != 0 {
				return usageError{fmt.Sprintf("--config %s has mode %04o: group or others may change it, and with it which clients are trusted and where secrets go; run: chmod go-w %s", path, perm, path)}
			}
			if perm&0o004 != 0 {
				if held := configSecrets(path); len(held) > 0 {
					fmt.Fprintf(e.stderr, "scepter: warning: --config %s has mode %04o: others may read the secret it holds (%s); run: chmod o-r %s, or move the secret to a file only scepter reads\n",
						path, perm, strings.Join(held, ", "), path)
				}
			}
		}
	}
	for _, name := range secretFileFlags {
		f := fs.Lookup(name)
		if f == nil || f.Value.String() == "" {
			continue
		}
		path := f.Value.String()
		perm, ok := regularFilePerm(path)
		if !ok {
			continue
		}
		if perm&0o022 != 0 {
			return usageError{fmt.Sprintf("--%s %s has mode %04o: group or others may change the secret; run: chmod 600 %s", name, path, perm, path)}
		}
		if perm&0o004 != 0 {
			fmt.Fprintf(e.stderr, "scepter: warning: --%s %s has mode %04o: others may read the secret; run: chmod 600 %s\n", name, path, perm, path)
		}
	}
	return nil
}

// regularFilePerm is the permission bits of the regular file path names
// (following symbolic links); ok is false for anything else.
func regularFilePerm(path string) (perm os.FileMode, ok bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Mode().Perm(), true
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
