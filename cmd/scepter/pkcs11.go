package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/scepter/scepter/internal/keys"
)

// pkcs11Flags select the PKCS#11 token that holds the CA's issuing CA, RA
// and OCSP responder keys (docs/hsm.md). Like every flag they can be given
// as SCEPTER_PKCS11_… in the environment or pkcs11_… in the config file.
type pkcs11Flags struct {
	uri       string
	module    string
	token     string
	pinFile   string
	keyPrefix string
}

func (p *pkcs11Flags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.uri, "pkcs11-uri", "", "PKCS#11 token of the CA keys as an RFC 7512 URI, e.g. 'pkcs11:token=ca;object=scepter?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/scepter/pin' (or the --pkcs11-module, --pkcs11-token, --pkcs11-pin-file flags)")
	fs.StringVar(&p.module, "pkcs11-module", "", "PKCS#11 module (shared library) of the HSM holding the CA, RA and OCSP keys; see docs/hsm.md")
	fs.StringVar(&p.token, "pkcs11-token", "", "label of the PKCS#11 token holding the CA keys")
	fs.StringVar(&p.pinFile, "pkcs11-pin-file", "", "file whose first line is the token's user PIN (never give a PIN on the command line)")
	fs.StringVar(&p.keyPrefix, "pkcs11-key-prefix", "", "first part of the labels of scepter's keys in the token (default \"scepter\": scepter-issuing, scepter-ra, …), for several CAs in one token")
}

// given reports whether any PKCS#11 flag is set.
func (p *pkcs11Flags) given() bool {
	return p.uri != "" || p.module != "" || p.token != "" || p.pinFile != "" || p.keyPrefix != ""
}

// config merges the URI and the separate flags; a setting given both ways
// must agree.
func (p *pkcs11Flags) config() (keys.PKCS11Config, error) {
	var c keys.PKCS11Config
	if p.uri != "" {
		var err error
		if c, err = keys.ParsePKCS11URI(p.uri); err != nil {
			// "--pkcs11-uri" says what "keys: PKCS#11 URI" did.
			text := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "keys: "), "PKCS#11 URI: ")
			return c, usageError{"--pkcs11-uri: " + text}
		}
	}
	for _, f := range []struct {
		name, flag string
		dst        *string
	}{
		{"pkcs11-module", p.module, &c.Module},
		{"pkcs11-token", p.token, &c.TokenLabel},
		{"pkcs11-pin-file", p.pinFile, &c.PINFile},
		{"pkcs11-key-prefix", p.keyPrefix, &c.KeyPrefix},
	} {
		if f.flag == "" {
			continue
		}
		if *f.dst != "" && *f.dst != f.flag {
			if f.dst == &c.PINFile {
				// Not quoted: either may be a PIN given where its file
				// belongs.
				return c, usageError{"--pkcs11-pin-file and the pin-source of --pkcs11-uri name different files (not shown, as either may be the PIN itself): give the PIN file one way"}
			}
			return c, usageError{fmt.Sprintf("--%s %q and --pkcs11-uri disagree (%q)", f.name, f.flag, *f.dst)}
		}
		*f.dst = f.flag
	}
	if p.token != "" && (c.TokenSerial != "" || c.Slot != nil) {
		return c, usageError{"--pkcs11-token and the serial= or slot-id= of --pkcs11-uri both select the token: give one"}
	}
	if err := c.Validate(); err != nil {
		return c, usageError{tokenErrorText(err)}
	}
	return c, nil
}

// open opens the token; nil, nil when no PKCS#11 flag is given.
func (p *pkcs11Flags) open() (keys.Token, error) {
	if !p.given() {
		return nil, nil
	}
	c, err := p.config()
	if err != nil {
		return nil, err
	}
	tok, err := keys.OpenPKCS11(c)
	if errors.Is(err, keys.ErrPINFile) || errors.Is(err, keys.ErrPKCS11Module) {
		// A PIN file missing or unsafe, or a module that is not there or
		// not a PKCS#11 library, is a configuration error (exit 2), as a
		// secret file of the other flags is; a PIN the token refuses, or a
		// token that is away, stays a failure (exit 1).
		return nil, usageError{tokenErrorText(err)}
	}
	if err != nil {
		// A token that is away, a PIN it refuses, a build without PKCS#11.
		return nil, tokenError{err}
	}
	return tok, nil
}

// noTokenGiven makes an error wrapping keys.ErrNoToken, a command run
// without the token flags on a CA whose keys are in a token, a
// configuration error (exit 2) that names the flags once, in place of the
// keys and ca packages' words (and "internal:" where the key was to sign a
// certificate). It still unwraps to err. Other errors pass unchanged.
func noTokenGiven(err error) error {
	if err == nil || !errors.Is(err, keys.ErrNoToken) {
		return err
	}
	return tokenNotGivenError{usageError{"the CA's keys are in a PKCS#11 token, and no token was given: give it with --pkcs11-module and --pkcs11-token (or --pkcs11-uri) and --pkcs11-pin-file (docs/hsm.md)"}, err}
}

// tokenNotGivenError is a usageError that unwraps to its cause too.
type tokenNotGivenError struct {
	usageError
	err error
}

func (e tokenNotGivenError) Unwrap() []error { return []error{e.usageError, e.err} }

// tokenError shows a token's failure as tokenErrorText words it, and
// unwraps to it (ErrWrongPIN, ErrTokenNotFound, pki.ErrUnavailable).
type tokenError struct{ err error }

func (e tokenError) Error() string { return tokenErrorText(e.err) }
func (e tokenError) Unwrap() error { return e.err }

// tokenErrorText is err's text as the user reads it: without the package
// prefix, and saying PKCS#11 once.
func tokenErrorText(err error) string {
	text := strings.TrimPrefix(err.Error(), "keys: ")
	if !strings.Contains(text, "PKCS#11") {
		text = "PKCS#11: " + text
	}
	return text
}
