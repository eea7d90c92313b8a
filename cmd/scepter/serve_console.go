package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

// adminPasswordFile keeps the password of the console's first user, made on
// a start that finds no user, like the generated challenge.
const adminPasswordFile = "admin-password.txt"

// generatedAdmin is the console user a first start makes, whose password
// adminPasswordFile keeps.
const generatedAdmin = "admin"

// writeSecretFile writes data to path, readable by its owner alone: 0600
// whatever the umask, and whatever mode a file already there had
// (os.WriteFile keeps an existing file's mode).
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if runtime.GOOS != "windows" {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return err
		}
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeAdminPasswordFile removes dataDir's admin-password.txt once the
// generated user (removed, the name as stored) is gone: its password
// opens nothing then, and a copy of a password has no business outliving
// it (a backup of the directory, a later user of that name). It returns
// the path removed ("" when none was).
func removeAdminPasswordFile(dataDir, removed string) (string, error) {
	if removed != generatedAdmin {
		return "", nil
	}
	path := filepath.Join(dataDir, adminPasswordFile)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("remove the removed user's generated password %s: %w", path, err)
	}
	return path, nil
}

// forgetStaleAdminPassword removes the generated admin password's file
// when it no longer opens the admin user: the user was removed, or given
// another password, elsewhere (another node's API, a store restored).
// Anything it cannot tell leaves the file, logged.
func forgetStaleAdminPassword(ctx context.Context, st store.Store, path string, log *slog.Logger) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		log.Warn("cannot read the generated admin password's file", "password_file", path, "err", err)
		return
	}
	why := "the user admin was removed"
	u, err := st.User(ctx, generatedAdmin)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		log.Warn("cannot tell whether the generated admin password is still the admin user's", "password_file", path, "err", err)
		return
	default:
		ok, err := credential.VerifyPassword(u.PasswordHash, strings.TrimSpace(string(b)))
		if err != nil {
			log.Warn("cannot tell whether the generated admin password is still the admin user's", "password_file", path, "err", err)
			return
		}
		if ok {
			return
		}
		why = "the user admin has another password now"
	}
	if err := os.Remove(path); err != nil {
		log.Warn("the generated admin password opens nothing any more ("+why+"), but its file could not be removed", "password_file", path, "err", err)
		return
	}
	log.Warn("removed the generated admin password's file: "+why, "password_file", path)
}

// webAdmin is the admin API and the console, and what the start prints
// about them.
type webAdmin struct {
	api     *api.Handler
	console *console.Handler
	auth    *auth.Service
	// password is the generated admin password, shown this once ("" when
	// none was made now).
	password, passwordFile string
	// noUser: the store has no console user and none was made (the
	// password file of an earlier one is still there).
	noUser bool
}

// newWebAdmin builds the operations layer, the API and the console, and
// makes the first console user when there is none.
func (f *serveFlags) newWebAdmin(ctx context.Context, st store.Store, adm *admin.Service, svc *enroll.Service, authority *ca.Authority,
	kick ops.Kicker, clock pki.Clock, log *slog.Logger) (*webAdmin, error) {
	au := auth.New(st, clock, log)
	userRemoved := func(name string) {
		switch path, err := removeAdminPasswordFile(f.dataDir, name); {
		case err != nil:
			log.Warn("the removed user's generated password is still on disk", "err", err)
		case path != "":
			log.Info("removed the generated password of the removed user", "user", name, "password_file", path)
		}
	}
	o := ops.New(ops.Config{Store: st, Admin: adm, Enroll: svc, Auth: au, Authority: authority, Clock: clock, Log: log, Kick: kick, UserRemoved: userRemoved})
	c, err := console.New(o, log, console.Options{})
	if err != nil {
		return nil, err
	}
	w := &webAdmin{api: api.New(o, log), console: c, auth: au, passwordFile: filepath.Join(f.dataDir, adminPasswordFile)}
	users, err := st.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		forgetStaleAdminPassword(ctx, st, w.passwordFile, log)
		return w, nil
	}
	if _, err := os.Stat(w.passwordFile); err == nil {
		// The last user was removed (the API and the CLI allow it), or the
		// store is another one. Neither is a reason for the CA, SCEP, EST,
		// OCSP and CRLs not to start: the console waits for a user, and the
		// file of the earlier password is neither overwritten nor used.
		log.Warn("the store has no console user; add one with 'scepter admin user add', or remove the password file to have an admin user made at the next start",
			"password_file", w.passwordFile)
		w.noUser = true
		return w, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// Removing a user removes the generated password's file with it
	// (removeAdminPasswordFile), so the trail says whether the last user
	// was removed: the console then waits for one added by hand, as
	// before, rather than an admin made anew whose password is printed.
	removed, err := st.ListAudit(ctx, store.AuditFilter{Type: pki.EventUserRemoved, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(removed) > 0 {
		log.Warn("the store has no console user (the last one was removed); add one with 'scepter admin user add'")
		w.noUser, w.passwordFile = true, ""
		return w, nil
	}
	password, err := credential.RandomToken(20)
	if err != nil {
		return nil, err
	}
	// The file first: a user whose password nobody has must not exist.
	if err := writeSecretFile(w.passwordFile, []byte(password+"\n")); err != nil {
		return nil, fmt.Errorf("save the admin password: %w", err)
	}
	if _, err := au.AddUser(ctx, generatedAdmin, pki.RoleAdmin, password, auth.CLI("system")); err != nil {
		os.Remove(w.passwordFile)
		if pki.ErrorCode(err) == pki.EConflict {
			// Nodes started together on a new store: another one made
			// it between our look and our insert. Its password is in its
			// data directory; this node starts as one that found a user.
			log.Info("another node made the console's admin user at the same time; its password is in that node's data directory")
			return w, nil
		}
		return nil, fmt.Errorf("create the admin user: %w", err)
	}
	w.password = password
	return w, nil
}

// lines says where the console is, and the generated password once,
// unless the output goes to the journal (then only its file).
func (w *webAdmin) lines(httpsBase string, toJournal bool) []string {
	out := []string{"Console:             " + httpsBase + "/ui/ (API: " + httpsBase + "/api/v1/)"}
	switch {
	case w.noUser && w.passwordFile == "":
		out = append(out, "Console login:       no console user (the last one was removed): add one with 'scepter admin user add NAME --role admin --password-file F'")
	case w.noUser:
		out = append(out, "Console login:       no console user: add one with 'scepter admin user add NAME --role admin --password-file F' (or remove "+
			w.passwordFile+" to have one made at the next start)")
	case w.password != "" && toJournal:
		out = append(out, "Console login:       admin, password generated, saved in "+w.passwordFile+" (not shown: this output goes to the journal)")
	case w.password != "":
		out = append(out, "Console login:       admin / "+w.password+" (generated, saved in "+w.passwordFile+")")
	}
	return out
}

// consoleOffLine is the banner's word on the console and the API without
// an HTTPS listener: they are not served at all, and the plain listener
// answers /ui/ and /api/ with 404 saying so.
const consoleOffLine = "Console and API:     off (they are served on the HTTPS listener; --est-listen is off)"

// reachingNames are those of names that reach an HTTPS listener bound to
// host (server.NamesReaching), DNS names resolved once, at start, within
// a few seconds: one that does not resolve in time is not named.
func reachingNames(ctx context.Context, names []string, host string) []string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return server.NamesReaching(ctx, names, host, func(ctx context.Context, name string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	})
}

// httpsNames are the names the plain listener's redirects to the console
// and the API may name (server.Handlers.HTTPSNames): those of the HTTPS
// certificate, in the order --est-server-name gives them for ours; never
// a wildcard, which is no host to go to.
func (f *serveFlags) httpsNames(cert *server.Certificate) []string {
	names := f.serverNames()
	if f.tlsCert != "" {
		names = certNames(cert.Leaf())
	}
	var out []string
	for _, n := range names {
		if !strings.Contains(n, "*") {
			out = append(out, n)
		}
	}
	return out
}
