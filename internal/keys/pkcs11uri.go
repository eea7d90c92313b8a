package keys

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/filetrust"
)

// PKCS11Config says which PKCS#11 token holds the CA's keys and how to log
// in to it. Exactly one of TokenLabel, TokenSerial and Slot selects the
// token. The PIN comes from PINFile (its first line); it is never part of a
// flag or a URI, which other users of the machine can read in ps.
type PKCS11Config struct {
	Module      string // path of the PKCS#11 library (module-path)
	TokenLabel  string // token=
	TokenSerial string // serial=
	Slot        *int   // slot-id=
	PINFile     string // pin-source=file:…
	// KeyPrefix starts the label of every key scepter makes or looks for
	// in the token: PREFIX-issuing, PREFIX-ra, PREFIX-ocsp-…, so that
	// several CAs can share a token (object= of the URI; default
	// "scepter").
	KeyPrefix string
}

// DefaultKeyPrefix is the label prefix of scepter's keys in a token.
const DefaultKeyPrefix = "scepter"

// ErrNoPKCS11 says that this binary was built without cgo, which PKCS#11
// needs.
var ErrNoPKCS11 = errors.New("keys: this scepter was built without PKCS#11 support (it needs cgo: build with CGO_ENABLED=1 and a C compiler)")

// Errors of OpenPKCS11.
var (
	ErrTokenNotFound = errors.New("PKCS#11 token not found")
	ErrWrongPIN      = errors.New("wrong PKCS#11 PIN")
	// ErrPKCS11Module marks a module path that names no file, or a file
	// that is no PKCS#11 library: a configuration error, as a missing PIN
	// file is.
	ErrPKCS11Module = errors.New("PKCS#11 module cannot be loaded")
)

// ParsePKCS11URI reads a PKCS#11 URI (RFC 7512) naming the token and the
// key label prefix, e.g.
//
//	pkcs11:token=scepter;object=ca1?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/scepter/pin
//
// Path attributes: token, serial, slot-id (one of them), object (the key
// label prefix); manufacturer, model, type and library-* are accepted and
// ignored. Query attributes: module-path, pin-source (a file: URI or a
// path). pin-value and id are refused, as is any attribute RFC 7512 does
// not define.
func ParsePKCS11URI(uri string) (PKCS11Config, error) {
	path, query, err := splitURI(uri)
	if err != nil {
		return PKCS11Config{}, err
	}
	var c PKCS11Config
	for k, v := range path {
		switch k {
		case "token":
			c.TokenLabel = v
		case "serial":
			c.TokenSerial = v
		case "slot-id":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return c, fmt.Errorf("keys: PKCS#11 URI: slot-id %q is not a number", v)
			}
			c.Slot = &n
		case "object":
			c.KeyPrefix = v
		case "id":
			return c, errors.New("keys: PKCS#11 URI: id= is not supported: scepter finds its keys by label (object= sets the label prefix)")
		case "pin-value":
			return c, errors.New("keys: PKCS#11 URI: pin-value would show the PIN to anyone running ps; use pin-source=file:PATH or --pkcs11-pin-file")
		case "manufacturer", "model", "type", "library-manufacturer", "library-description", "library-version", "slot-description", "slot-manufacturer":
		default:
			return c, fmt.Errorf("keys: PKCS#11 URI: unknown attribute %q", k)
		}
	}
	for k, v := range query {
		switch k {
		case "module-path":
			c.Module = v
		case "pin-source":
			if rest, ok := cutPrefixFold(v, "file:"); ok {
				// file:///path, file://localhost/path, file:/path, or
				// file:path. A file URI naming another host is refused:
				// with the host taken for a directory it would name a
				// local file that the URI does not mean.
				if authority, ok := strings.CutPrefix(rest, "//"); ok {
					host, path, _ := strings.Cut(authority, "/")
					if host != "" && !strings.EqualFold(host, "localhost") {
						// Not quoted: a PIN put where the file belongs
						// would be printed.
						return c, errors.New("keys: PKCS#11 URI: pin-source names the host of a file: URI (file://HOST/…; " + pinValueNotShown + "): only a file of this machine is supported; give pin-source=file:/path/to/pin-file")
					}
					rest = "/" + path
				}
				v = rest
			} else if strings.Contains(v, ":") && !strings.HasPrefix(v, "/") {
				return c, errors.New("keys: PKCS#11 URI: pin-source is neither a file: URI nor a path (" + pinValueNotShown + "): only file: is supported; give pin-source=file:/path/to/pin-file")
			}
			c.PINFile = v
		case "pin-value":
			return c, errors.New("keys: PKCS#11 URI: pin-value would show the PIN to anyone running ps; use pin-source=file:PATH or --pkcs11-pin-file")
		case "module-name":
			return c, errors.New("keys: PKCS#11 URI: module-name is not supported; give module-path")
		default:
			return c, fmt.Errorf("keys: PKCS#11 URI: unknown query attribute %q", k)
		}
	}
	return c, nil
}

// splitURI splits a pkcs11: URI into its percent-decoded path and query
// attributes; a repeated attribute is refused.
func splitURI(uri string) (path, query map[string]string, err error) {
	rest, ok := cutPrefixFold(uri, "pkcs11:")
	if !ok {
		return nil, nil, fmt.Errorf("keys: %q is not a PKCS#11 URI (pkcs11:…)", uri)
	}
	p, q, _ := strings.Cut(rest, "?")
	path, query = map[string]string{}, map[string]string{}
	for _, part := range []struct {
		s   string
		sep string
		m   map[string]string
	}{{p, ";", path}, {q, "&", query}} {
		if part.s == "" {
			continue
		}
		for _, attr := range strings.Split(part.s, part.sep) {
			if attr == "" {
				continue
			}
			k, v, ok := strings.Cut(attr, "=")
			if !ok {
				return nil, nil, fmt.Errorf("keys: PKCS#11 URI: %q is not name=value", attr)
			}
			v, err := url.PathUnescape(v)
			if err != nil {
				return nil, nil, fmt.Errorf("keys: PKCS#11 URI: %s: %w", k, err)
			}
			k = strings.ToLower(k)
			if _, dup := part.m[k]; dup {
				return nil, nil, fmt.Errorf("keys: PKCS#11 URI: %s given twice", k)
			}
			part.m[k] = v
		}
	}
	return path, query, nil
}

// pctEncode percent-encodes everything but RFC 3986 unreserved characters.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// Validate checks that the configuration names a module, one token and a
// PIN file.
func (c PKCS11Config) Validate() error {
	n := 0
	if c.TokenLabel != "" {
		n++
	}
	if c.TokenSerial != "" {
		n++
	}
	if c.Slot != nil {
		n++
	}
	switch {
	case c.Module == "":
		return errors.New("keys: PKCS#11: no module (--pkcs11-module, or module-path in the URI)")
	case n == 0:
		return errors.New("keys: PKCS#11: no token (--pkcs11-token, or token=, serial= or slot-id= in the URI)")
	case n > 1:
		return errors.New("keys: PKCS#11: the token is selected more than once: give one of token=, serial=, slot-id=")
	case c.PINFile == "":
		return errors.New("keys: PKCS#11: no PIN file (--pkcs11-pin-file, or pin-source=file:PATH in the URI)")
	}
	if strings.ContainsAny(c.KeyPrefix, "\x00") {
		return errors.New("keys: PKCS#11: the key label prefix holds a NUL byte")
	}
	return nil
}

// tokenSelector is the path part of a reference naming the token as the
// configuration selects it.
func (c PKCS11Config) tokenSelector() string {
	switch {
	case c.TokenLabel != "":
		return "token=" + pctEncode(c.TokenLabel)
	case c.TokenSerial != "":
		return "serial=" + pctEncode(c.TokenSerial)
	case c.Slot != nil:
		return "slot-id=" + strconv.Itoa(*c.Slot)
	}
	return ""
}

// describe names the token for messages.
func (c PKCS11Config) describe() string {
	var tok string
	switch {
	case c.TokenLabel != "":
		tok = fmt.Sprintf("token %q", c.TokenLabel)
	case c.TokenSerial != "":
		tok = fmt.Sprintf("token with serial %q", c.TokenSerial)
	case c.Slot != nil:
		tok = fmt.Sprintf("token in slot %d", *c.Slot)
	}
	return tok + " of " + c.Module
}

// prefix is the label prefix with its dash.
func (c PKCS11Config) prefix() string {
	p := c.KeyPrefix
	if p == "" {
		p = DefaultKeyPrefix
	}
	return p + "-"
}

// refLabel reads a reference: it must name the same token as c (when both
// name it the same way) and returns the object label.
func (c PKCS11Config) refLabel(ref string) (string, error) {
	path, _, err := splitURI(ref)
	if err != nil {
		return "", err
	}
	label := path["object"]
	if label == "" {
		return "", fmt.Errorf("keys: the reference %s names no object", ref)
	}
	for _, chk := range []struct{ attr, have string }{{"token", c.TokenLabel}, {"serial", c.TokenSerial}} {
		if v, ok := path[chk.attr]; ok && chk.have != "" && v != chk.have {
			return "", fmt.Errorf("keys: the key %s is in %s=%s, but the token given is %s=%s", label, chk.attr, v, chk.attr, chk.have)
		}
	}
	return label, nil
}

// readPIN reads the first line of the PIN file. A file that its group or
// others may read is refused, as a key file is: the PIN opens every key of
// the token. So is one another user than us or root may change, by owning
// it or replacing it in a directory they may write, as the command line
// refuses its secret files: they could read the PIN, and lock it for every
// node of the token by feeding the server wrong ones.
// Its refusals wrap ErrPINFile.
func (c PKCS11Config) readPIN() (string, error) {
	if _, err := os.Stat(c.PINFile); err != nil {
		return "", pinFileRefused{pinFileError(c.PINFile, err)}
	}
	if err := checkSecretFileMode(c.PINFile, "a PKCS#11 PIN"); err != nil {
		return "", pinFileRefused{err}
	}
	if err := filetrust.Check("PKCS#11 PIN file", c.PINFile, "the PIN, which opens every key of the token"); err != nil {
		return "", pinFileRefused{fmt.Errorf("keys: %w", err)}
	}
	data, err := filetrust.ReadRegular(c.PINFile)
	if err != nil {
		return "", pinFileRefused{fmt.Errorf("keys: PKCS#11 PIN: %w", err)}
	}
	defer clear(data)
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", pinFileRefused{fmt.Errorf("keys: PKCS#11 PIN file %s: the first line is empty", c.PINFile)}
	}
	return line, nil
}

// ErrPINFile marks a PIN file scepter refuses or cannot read before the
// token is asked (missing, readable by others, in a directory others may
// write, a symlink, empty): a configuration error the operator mends,
// unlike a PIN the token refuses (ErrWrongPIN) or a token that is away.
var ErrPINFile = errors.New("keys: the PKCS#11 PIN file cannot be used")

// pinFileRefused is a readPIN refusal: its text is err's alone (which
// never shows a PIN), and errors.Is sees both err and ErrPINFile.
type pinFileRefused struct{ err error }

func (e pinFileRefused) Error() string   { return e.err.Error() }
func (e pinFileRefused) Unwrap() []error { return []error{e.err, ErrPINFile} }

// pinValueNotShown says why a message leaves out the pin-source or PIN file
// it is about.
const pinValueNotShown = "its value is not shown, as it may be the PIN itself"

// pinFileError is the error of a PIN file that cannot be found or
// reached (err, from os.Stat). The name is shown only when it is plainly a
// path (it holds a '/'): a PIN given where the file's name belongs
// (pin-source=1234) would otherwise be printed, to the terminal and the
// journal.
func pinFileError(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // its text repeats the name
	}
	if strings.ContainsRune(name, '/') || strings.ContainsRune(name, filepath.Separator) {
		return fmt.Errorf("keys: PKCS#11 PIN file %s: %w", name, err)
	}
	return fmt.Errorf("keys: the PKCS#11 PIN file names no file scepter can read (%w; %s): give the file whose first line is the PIN, pin-source=file:/path/to/pin-file in the URI or --pkcs11-pin-file /path/to/pin-file", err, pinValueNotShown)
}

// marshalPublic is the SubjectPublicKeyInfo of pub.
func marshalPublic(pub crypto.PublicKey) ([]byte, error) { return x509.MarshalPKIXPublicKey(pub) }

func pemPublic(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// parsePublicPEM parses the first "PUBLIC KEY" block of data; nil, nil when
// there is none.
func parsePublicPEM(data []byte) (crypto.PublicKey, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, nil
		}
		if b.Type == "PUBLIC KEY" {
			return x509.ParsePKIXPublicKey(b.Bytes)
		}
	}
}

// unopenedKey stands for a token key that was not opened (Dir.Unopened):
// its public half is known, every use fails with ErrNoToken.
func unopenedKey(pub crypto.PublicKey, where string) crypto.Signer {
	s := unopenedSigner{pub: pub, where: where}
	if _, ok := pub.(*rsa.PublicKey); ok {
		return unopenedDecrypter{s}
	}
	return s
}

type unopenedSigner struct {
	pub   crypto.PublicKey
	where string
}

func (s unopenedSigner) Public() crypto.PublicKey { return s.pub }

func (s unopenedSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("keys: %s: %w; this command needs the token's --pkcs11-… flags", s.where, ErrNoToken)
}

type unopenedDecrypter struct{ unopenedSigner }

func (s unopenedDecrypter) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, fmt.Errorf("keys: %s: %w; this command needs the token's --pkcs11-… flags", s.where, ErrNoToken)
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case, for URI schemes
// (RFC 3986 §3.1: case-insensitive).
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
