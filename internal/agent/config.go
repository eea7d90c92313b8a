package agent

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/filetrust"
	"github.com/scepter/scepter/internal/keys"
)

// Defaults of the agent's settings.
const (
	DefaultRetryInitial     = time.Minute
	DefaultRetryMax         = time.Hour
	DefaultCheckInterval    = time.Hour
	DefaultOnceAttempts     = 3
	DefaultPostRenewTimeout = 2 * time.Minute
	// DefaultRenewTimeout bounds one renewal attempt: the few exchanges of
	// a renewal take seconds, and a server that accepts the connection and
	// never answers must not hold the certificates after it for longer.
	DefaultRenewTimeout = 2 * time.Minute
)

// Config is an agent.toml file: settings, and the certificates to keep
// renewed.
type Config struct {
	// Path is the file it was read from; Dir is the directory relative
	// paths are resolved against, and where post_renew commands run.
	Path, Dir string
	// RetryInitial is the wait after a failed attempt; it doubles with each
	// further failure, with jitter, up to RetryMax.
	RetryInitial, RetryMax time.Duration
	// CheckInterval is the longest the long-running agent sleeps before it
	// reads the files again (a certificate replaced by hand, a clock that
	// jumped, a machine that was suspended).
	CheckInterval time.Duration
	// OnceAttempts is how often a run with --once tries a due renewal before
	// it gives up (and exits non-zero).
	OnceAttempts int
	// RenewTimeout bounds each certificate's renewal attempt (every
	// exchange with the server in it), so that one server that hangs
	// delays the certificates checked after it by at most that.
	RenewTimeout time.Duration
	Certificates []Certificate
}

// Certificate is one [[certificate]] table: what to keep renewed, and how.
type Certificate struct {
	Name     string
	Protocol string // ProtocolSCEP or ProtocolEST
	// URL is the SCEP URL (http://HOST:PORT/scep[/PROFILE]) or the EST
	// server (https://HOST:PORT[/LABEL]).
	URL string
	// CAFingerprint is "sha256:HEX" of a CA certificate the server must
	// present; the renewed certificate must chain to it.
	CAFingerprint string
	// KeyPath and CertPath are absolute. Equal, they name one file holding
	// the certificate, its chain and the key (HAProxy's format). ChainPath,
	// when set, receives the CA chain; equal to CertPath, the chain follows
	// the certificate in that file.
	KeyPath, CertPath, ChainPath string
	// RenewBefore, when positive, puts the renewal point that long before
	// NotAfter; zero puts it at two thirds of the lifetime.
	RenewBefore time.Duration
	// Rekey makes a new key at each renewal (default true); KeyType is its
	// type, "" for the type of the current key.
	Rekey   bool
	KeyType string
	// ChallengeFile holds a challenge password sent in the SCEP CSR (a
	// server encrypts an EC requester's certificate with it).
	ChallengeFile string
	// PostRenew is run by /bin/sh -c after each renewal, bounded by
	// PostRenewTimeout.
	PostRenew        string
	PostRenewTimeout time.Duration
}

// Protocols.
const (
	ProtocolSCEP = "scep"
	ProtocolEST  = "est"
)

// Combined reports whether key and certificate share one file.
func (c *Certificate) Combined() bool { return c.KeyPath == c.CertPath }

type fileConfig struct {
	RetryInitial  string           `toml:"retry_initial"`
	RetryMax      string           `toml:"retry_max"`
	CheckInterval string           `toml:"check_interval"`
	OnceAttempts  *int             `toml:"once_attempts"`
	RenewTimeout  string           `toml:"renew_timeout"`
	Certificate   []toml.Primitive `toml:"certificate"`
}

type fileCert struct {
	Name             string `toml:"name"`
	Protocol         string `toml:"protocol"`
	URL              string `toml:"url"`
	CAFingerprint    string `toml:"ca_fingerprint"`
	KeyPath          string `toml:"key_path"`
	CertPath         string `toml:"cert_path"`
	ChainPath        string `toml:"chain_path"`
	RenewBefore      string `toml:"renew_before"`
	Rekey            *bool  `toml:"rekey"`
	KeyType          string `toml:"key_type"`
	ChallengeFile    string `toml:"challenge_file"`
	PostRenew        string `toml:"post_renew"`
	PostRenewTimeout string `toml:"post_renew_timeout"`
}

var certKeys = map[string]bool{}

func init() {
	for _, k := range []string{"name", "protocol", "url", "ca_fingerprint", "key_path", "cert_path", "chain_path", "renew_before",
		"rekey", "key_type", "challenge_file", "post_renew", "post_renew_timeout"} {
		certKeys[k] = true
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// LoadConfig reads and checks an agent.toml file. Relative paths in it are
// relative to the file's directory.
func LoadConfig(path string) (*Config, error) {
	data, err := filetrust.ReadRegular(path)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	dir := filepath.Dir(abs)
	if filetrust.HasDotDot(path) {
		// Abs cleans "L/../agent.toml" by text; the kernel went up from
		// where L leads.
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("agent config: %w", err)
		}
		if dir, err = filetrust.KernelPath(wd, filetrust.LiteralDir(path)); err != nil {
			return nil, fmt.Errorf("agent config %s: %w", path, err)
		}
	}
	cfg, err := ParseConfig(data, dir)
	if err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig parses an agent.toml; relative paths are resolved against
// baseDir. Unknown keys are errors.
func ParseConfig(data []byte, baseDir string) (*Config, error) {
	// Types first, to say what a key takes rather than the decoder's
	// "incompatible types".
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, err
	}
	if err := checkTypes(raw); err != nil {
		return nil, err
	}
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		return nil, err
	}
	var top []string
	for _, k := range md.Keys() {
		if len(k) == 1 {
			top = append(top, k[0])
		}
	}
	if err := config.ExactKeys(top, fileConfig{}); err != nil {
		return nil, fmt.Errorf("%w (want retry_initial, retry_max, check_interval, once_attempts, renew_timeout and [[certificate]] tables)", err)
	}
	cfg := &Config{Dir: baseDir, RetryInitial: DefaultRetryInitial, RetryMax: DefaultRetryMax, CheckInterval: DefaultCheckInterval, OnceAttempts: DefaultOnceAttempts,
		RenewTimeout: DefaultRenewTimeout}
	var errs []error
	dur := func(key, s string, dst *time.Duration) {
		if s == "" {
			return
		}
		d, err := config.ParseDuration(s)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s = %q: %w", key, s, err))
			return
		}
		*dst = d
	}
	dur("retry_initial", fc.RetryInitial, &cfg.RetryInitial)
	dur("retry_max", fc.RetryMax, &cfg.RetryMax)
	dur("check_interval", fc.CheckInterval, &cfg.CheckInterval)
	dur("renew_timeout", fc.RenewTimeout, &cfg.RenewTimeout)
	if cfg.RetryInitial > cfg.RetryMax {
		errs = append(errs, fmt.Errorf("retry_initial (%s) is longer than retry_max (%s)", cfg.RetryInitial, cfg.RetryMax))
	}
	if fc.OnceAttempts != nil {
		if *fc.OnceAttempts < 1 || *fc.OnceAttempts > 100 {
			errs = append(errs, fmt.Errorf("once_attempts = %d: want 1 to 100", *fc.OnceAttempts))
		} else {
			cfg.OnceAttempts = *fc.OnceAttempts
		}
	}
	if len(fc.Certificate) == 0 {
		errs = append(errs, errors.New("no [[certificate]] table: nothing to keep renewed"))
	}
	names, paths := map[string]int{}, map[string]string{}
	for i, prim := range fc.Certificate {
		c, err := parseCert(md, prim, baseDir)
		label := fmt.Sprintf("certificate %d", i+1)
		if c.Name != "" {
			label = fmt.Sprintf("certificate %d (%q)", i+1, c.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		if j, ok := names[c.Name]; ok {
			errs = append(errs, fmt.Errorf("%s: the name is already used by certificate %d", label, j))
			continue
		}
		names[c.Name] = i + 1
		for _, p := range uniq(c.KeyPath, c.CertPath, c.ChainPath) {
			if other, ok := paths[p]; ok {
				errs = append(errs, fmt.Errorf("%s: %s is also a file of certificate %q", label, p, other))
			}
			paths[p] = c.Name
		}
		cfg.Certificates = append(cfg.Certificates, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func uniq(paths ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func parseCert(md toml.MetaData, prim toml.Primitive, baseDir string) (Certificate, error) {
	var raw map[string]toml.Primitive
	if err := md.PrimitiveDecode(prim, &raw); err != nil {
		return Certificate{}, err
	}
	var unknown []string
	for k := range raw {
		if !certKeys[k] {
			unknown = append(unknown, k)
		}
	}
	var fc fileCert
	if err := md.PrimitiveDecode(prim, &fc); err != nil {
		return Certificate{}, err
	}
	c := Certificate{Name: fc.Name, Protocol: strings.ToLower(fc.Protocol), URL: fc.URL, CAFingerprint: fc.CAFingerprint,
		Rekey: true, KeyType: fc.KeyType, PostRenew: fc.PostRenew, PostRenewTimeout: DefaultPostRenewTimeout}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return c, fmt.Errorf("unknown keys: %s", strings.Join(unknown, ", "))
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.Name == "":
		fail("name is required")
	case !nameRE.MatchString(c.Name):
		fail("name %q: %s", c.Name, badName(c.Name))
	}
	// In any case, as it always was (and as the server takes key_types
	// and key_usage): configurations that say "SCEP" keep working.
	switch c.Protocol {
	case ProtocolSCEP, ProtocolEST:
	case "":
		fail("protocol is required: scep or est")
	default:
		fail("protocol %q: want scep or est", fc.Protocol)
	}
	if c.URL == "" {
		fail("url is required")
	} else if u, err := url.Parse(c.URL); err != nil || u.Host == "" {
		fail("url %q is not an absolute URL", client.RedactURL(c.URL))
	} else {
		if c.Protocol == ProtocolEST && u.Scheme != "https" {
			fail("url %q: EST runs over https://HOST:PORT[/LABEL]", client.RedactURL(c.URL))
		} else if err := (&client.EST{URL: c.URL}).CheckURL(); c.Protocol == ProtocolEST && u.User == nil && err != nil {
			// The EST client's own rules (one label, no query), at start
			// rather than when the certificate comes due.
			fail("url: %v", err)
		} else if c.Protocol == ProtocolSCEP && u.Scheme != "http" && u.Scheme != "https" {
			fail("url %q: want http:// or https://", client.RedactURL(c.URL))
		}
		if u.User != nil {
			// A renewal is authenticated by the certificate it renews (its
			// signature over SCEP, TLS over EST), never by a password: EST
			// would refuse it at the renewal point and SCEP send it for
			// nothing.
			fail("url %q carries credentials (user:password@): remove the credentials from url; the renewal is authenticated by the certificate it renews", client.RedactURL(c.URL))
		}
	}
	if c.CAFingerprint == "" {
		fail("ca_fingerprint is required (sha256:HEX of the CA certificate, as `scepter serve` prints it)")
	} else if !validFingerprint(c.CAFingerprint) {
		fail("ca_fingerprint %q: want sha256: followed by 64 hex digits", c.CAFingerprint)
	}
	path := func(setting, p string) string {
		if p == "" {
			return ""
		}
		resolved, err := filetrust.KernelPath(baseDir, p)
		if err != nil {
			fail("%s %q: %v", setting, p, err)
			return p
		}
		return resolved
	}
	c.KeyPath, c.CertPath, c.ChainPath = path("key_path", fc.KeyPath), path("cert_path", fc.CertPath), path("chain_path", fc.ChainPath)
	if c.KeyPath == "" {
		fail("key_path is required")
	}
	if c.CertPath == "" {
		fail("cert_path is required")
	}
	if c.ChainPath != "" && c.ChainPath == c.KeyPath && !c.Combined() {
		fail("chain_path is key_path: the chain goes beside the certificate (chain_path = cert_path), or in a file of its own")
	}
	if fc.RenewBefore != "" {
		d, err := config.ParseDuration(fc.RenewBefore)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			fail("renew_before = %q: %v (e.g. \"7d\" or \"36h\")", fc.RenewBefore, err)
		}
		c.RenewBefore = d
	}
	if fc.Rekey != nil {
		c.Rekey = *fc.Rekey
	}
	if c.KeyType != "" {
		if !keys.ValidKeyType(c.KeyType) {
			fail("key_type %q: want %s", c.KeyType, strings.Join(keys.KeyTypes, ", "))
		} else if !c.Rekey {
			fail("key_type is the type of a new key, and rekey = false keeps the key")
		}
	}
	if fc.ChallengeFile != "" {
		if c.Protocol != ProtocolSCEP {
			fail("challenge_file is for SCEP")
		}
		c.ChallengeFile = path("challenge_file", fc.ChallengeFile)
	}
	if fc.PostRenewTimeout != "" {
		d, err := config.ParseDuration(fc.PostRenewTimeout)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			fail("post_renew_timeout = %q: %v", fc.PostRenewTimeout, err)
		}
		c.PostRenewTimeout = d
	}
	return c, errors.Join(errs...)
}

// validFingerprint accepts what client.CheckFingerprint takes.
func validFingerprint(s string) bool {
	_, ok := client.NormalizeFingerprint(s)
	return ok
}

// badName says why a certificate name nameRE refuses is refused.
func badName(name string) string {
	const rule = "it names the state directory, so use letters, digits, '.', '_' and '-', starting with a letter or digit, up to 64 characters"
	switch {
	case strings.Trim(name, ".") == "":
		return "a name of only dots would name the directory itself or its parent; " + rule
	case len(name) > 64:
		return "too long; " + rule
	case !strings.ContainsAny(name[:1], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"):
		return fmt.Sprintf("starts with %q; %s", name[:1], rule)
	}
	return rule
}

// What the keys of agent.toml take, for the messages of type errors; a key
// not listed takes a string.
const (
	wantDuration = `a duration in quotes, such as "5m"`
	wantString   = "a string, in quotes"
	wantBool     = "true or false, without quotes"
	wantInt      = "a whole number, without quotes"
)

var topTypes = map[string]string{"retry_initial": wantDuration, "retry_max": wantDuration, "check_interval": wantDuration,
	"renew_timeout": wantDuration, "once_attempts": wantInt}

var certTypes = map[string]string{"renew_before": wantDuration, "post_renew_timeout": wantDuration, "rekey": wantBool}

// checkTypes refuses a value of the wrong TOML type, naming the key (and
// the certificate) and what it takes. Unknown keys are left to ExactKeys.
func checkTypes(raw map[string]any) error {
	var errs []error
	for k, v := range raw {
		want, ok := topTypes[k]
		if !ok {
			continue
		}
		if !fits(v, want) {
			errs = append(errs, fmt.Errorf("%s = %s: want %s", k, valueText(v), want))
		}
	}
	certs, ok := raw["certificate"]
	if !ok {
		return errors.Join(errs...)
	}
	tables, ok := certs.([]map[string]any)
	if !ok {
		return errors.Join(append(errs, fmt.Errorf("certificate = %s: want [[certificate]] tables", valueText(certs)))...)
	}
	for i, t := range tables {
		label := fmt.Sprintf("certificate %d", i+1)
		if name, ok := t["name"].(string); ok && name != "" {
			label = fmt.Sprintf("certificate %d (%q)", i+1, name)
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !certKeys[k] {
				continue
			}
			want, ok := certTypes[k]
			if !ok {
				want = wantString
			}
			if !fits(t[k], want) {
				errs = append(errs, fmt.Errorf("%s: %s = %s: want %s", label, k, valueText(t[k]), want))
			}
		}
	}
	return errors.Join(errs...)
}

func fits(v any, want string) bool {
	switch want {
	case wantBool:
		_, ok := v.(bool)
		return ok
	case wantInt:
		_, ok := v.(int64)
		return ok
	}
	_, ok := v.(string)
	return ok
}

// valueText is a TOML value as the file may spell it, or its kind.
func valueText(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%.40q", v)
	case bool, int64:
		return fmt.Sprint(v)
	case float64:
		// As a float: 3.0, which fmt writes 3, is refused where a whole
		// number is wanted, and the echo must not read as one.
		switch {
		case math.IsNaN(v):
			return "nan"
		case math.IsInf(v, 1):
			return "inf"
		case math.IsInf(v, -1):
			return "-inf"
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case time.Time:
		return config.TOMLTimeName(v)
	}
	return fmt.Sprintf("a %T", v)
}
