package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/pki"
)

// maxRSABits bounds RSA keys when a KeyPolicy sets no maximum.
const maxRSABits = 8192

// CheckKey enforces a KeyPolicy on a subject public key: RSA keys must have
// between RSAMinBits and RSAMaxBits bits (RSAMinBits 0 refuses RSA,
// RSAMaxBits 0 means 8192) and the exponent 65537, and must not be known
// weak (a small prime factor, or prime factors so close together that
// Fermat's method finds them); EC keys must be valid points on one of
// ECCurves ("P-256" or "p256" spellings); anything else (Ed25519, DSA...) is
// refused. RSA keys are also refused when they are known weak: Debian's
// predictable keys of CVE-2008-0166 (the openssl-blacklist fingerprints,
// weakkeys/README.md) and Infineon RSALib keys (ROCA, CVE-2017-15361, by
// their fingerprint); and when p.Blocklist lists them (an operator's
// --weak-keys-file), with a refusal that names the list. A refusal is a
// *pki.Error with code pki.EBadRequest whose message says why.
func CheckKey(p pki.KeyPolicy, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return pki.Errorf(pki.EBadRequest, "the RSA public key is empty")
		}
		if p.RSAMinBits <= 0 {
			return pki.Errorf(pki.EBadRequest, "RSA keys are not accepted by this profile%s", allowedCurves(p))
		}
		bits := k.N.BitLen()
		if bits < p.RSAMinBits {
			return pki.Errorf(pki.EBadRequest, "RSA key of %d bits is below the profile minimum of %d", bits, p.RSAMinBits)
		}
		if err := CheckKeySize(p, k); err != nil {
			return err
		}
		if k.E != 65537 {
			return pki.Errorf(pki.EBadRequest, "RSA public exponent %d is not allowed (only 65537)", k.E)
		}
		if hasSmallFactor(k.N) {
			return pki.Errorf(pki.EBadRequest, "RSA key is weak: its modulus is even or has a prime factor below 752")
		}
		if fermatFactorable(k.N, fermatRounds) {
			return pki.Errorf(pki.EBadRequest, "RSA key is weak: its prime factors are too close together")
		}
		if hasROCAFingerprint(k.N) {
			return pki.Errorf(pki.EBadRequest, "RSA key is weak: it has the structure of keys made by Infineon's RSALib (ROCA, CVE-2017-15361), whose private key can be computed from the public key; update the device or token firmware and generate a new key")
		}
		weak, err := isDebianWeak(k.N)
		if err != nil {
			return pki.Wrap(pki.EInternal, err, "internal error")
		}
		if weak {
			return pki.Errorf(pki.EBadRequest, "RSA key is weak: it is one of the predictable keys of Debian's broken OpenSSL (CVE-2008-0166), whose private keys are public; generate a new key with a fixed OpenSSL")
		}
		if p.Blocklist != nil && p.Blocklist.Blocked(k.N) {
			// The operator's list may hold keys compromised in any way:
			// name it rather than guess why the key is on it.
			return pki.Errorf(pki.EBadRequest, "RSA key is weak: it is on the blocklist %s (--weak-keys-file) of keys known to be compromised; generate a new key", blocklistName(p.Blocklist, k.N))
		}
		return nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil || k.Curve.Params() == nil {
			return pki.Errorf(pki.EBadRequest, "the EC public key has no curve")
		}
		name := k.Curve.Params().Name
		if !slices.ContainsFunc(p.ECCurves, func(c string) bool { return normCurve(c) == normCurve(name) }) {
			if len(p.ECCurves) == 0 {
				return pki.Errorf(pki.EBadRequest, "EC keys are not accepted by this profile (RSA only)")
			}
			return pki.Errorf(pki.EBadRequest, "EC key on curve %s is not accepted by this profile (allowed: %s)", name, strings.Join(p.ECCurves, ", "))
		}
		// ECDH validates that the point is on the curve and not the identity.
		if _, err := k.ECDH(); err != nil {
			return pki.Errorf(pki.EBadRequest, "the EC public key is not a valid point on %s", name)
		}
		return nil
	case ed25519.PublicKey:
		return pki.Errorf(pki.EBadRequest, "Ed25519 keys are not accepted by this profile")
	case nil:
		return pki.Errorf(pki.EBadRequest, "no public key")
	default:
		return pki.Errorf(pki.EBadRequest, "this key type (%T) is not accepted: use RSA or EC", pub)
	}
}

// CheckSignatureAlgorithm refuses a certificate request signed with a
// broken hash: SHA-1 (sha1WithRSAEncryption, ecdsa-with-SHA1), MD5 or DSA,
// unless allowLegacy (a profile's AllowLegacySignatures) lets SHA-1 through
// for old clients. MD5 and DSA signatures are refused even then, since they
// cannot be verified here. An algorithm crypto/x509 does not read is
// named as req's bytes give it (Ed448; RSASSA-PSS with its hash and salt
// length, and what is required instead). A refusal is a *pki.Error with
// code pki.EBadAlg.
func CheckSignatureAlgorithm(req *x509.CertificateRequest, allowLegacy bool) error {
	var hash string
	switch alg := req.SignatureAlgorithm; alg {
	case x509.UnknownSignatureAlgorithm:
		if what := unknownSignatureAlgorithm(req.Raw); what != "" {
			return pki.Errorf(pki.EBadAlg, "the certificate request's signature algorithm is not supported: %s", what)
		}
		// Go reads RSASSA-PSS only with a salt as long as the hash;
		// OpenSSL's default is the longest salt.
		return pki.Errorf(pki.EBadAlg, "the certificate request's signature algorithm is not supported: use RSA PKCS #1 v1.5 or ECDSA with SHA-256 or stronger, or RSASSA-PSS with a salt as long as the hash (openssl: -sigopt rsa_pss_saltlen:digest)")
	case x509.MD5WithRSA, x509.MD2WithRSA:
		return pki.Errorf(pki.EBadAlg, "the certificate request is signed with %s, which is broken and never accepted; sign it with SHA-256 or stronger", alg)
	case x509.DSAWithSHA1, x509.DSAWithSHA256:
		return pki.Errorf(pki.EBadAlg, "the certificate request is signed with DSA (%s), which is not accepted; use an RSA or EC key and SHA-256 or stronger", alg)
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
		hash = "SHA-1"
	default:
		return nil
	}
	if allowLegacy {
		return nil
	}
	return pki.Errorf(pki.EBadAlg, "the certificate request is signed with %s (%s), which this profile refuses; sign it with SHA-256 or stronger, or ask the operator to set allow_legacy_signatures = true for this profile", hash, req.SignatureAlgorithm)
}

// CheckKeySize refuses an RSA key above the policy's maximum (8192 bits
// when it sets none). It is cheap, and comes before any signature by the
// key is checked: verifying with a key of a million bits, which fits in a
// SCEP message, costs half a minute of CPU. It also refuses a key that
// crypto/x509 could not read (nil): an RSASSA-PSS key (id-RSASSA-PSS in
// the SubjectPublicKeyInfo) is one, whose request would otherwise be
// refused as badly signed when its signature is fine.
func CheckKeySize(p pki.KeyPolicy, pub crypto.PublicKey) error {
	if pub == nil {
		return pki.Errorf(pki.EBadRequest, "the request's public key is of a type this CA does not accept (an RSASSA-PSS key, say): use an RSA key (rsaEncryption) or an EC key")
	}
	k, ok := pub.(*rsa.PublicKey)
	if !ok || k == nil || k.N == nil {
		return nil
	}
	maxBits := p.RSAMaxBits
	if maxBits <= 0 {
		maxBits = maxRSABits
	}
	if bits := k.N.BitLen(); bits > maxBits {
		return pki.Errorf(pki.EBadRequest, "RSA key of %d bits is above the profile maximum of %d", bits, maxBits)
	}
	return nil
}

// namedBlocklist is a pki.KeyBlocklist that can tell which of its lists
// holds a modulus (WeakKeyFile: the file's base name).
type namedBlocklist interface {
	ListOf(n *big.Int) string
}

// blocklistName names, for a refusal, the list of b that holds n.
func blocklistName(b pki.KeyBlocklist, n *big.Int) string {
	if nb, ok := b.(namedBlocklist); ok {
		if name := nb.ListOf(n); name != "" {
			return strconv.Quote(name)
		}
	}
	return "the operator loaded"
}

func allowedCurves(p pki.KeyPolicy) string {
	if len(p.ECCurves) == 0 {
		return ""
	}
	return " (EC keys on " + strings.Join(p.ECCurves, ", ") + " are)"
}

// normCurve maps "P-256", "p256", "P256" to one spelling.
func normCurve(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "-", ""))
}

// smallPrimesProduct is the product of the odd primes below 752: the bound
// of the CA/Browser Forum's Baseline Requirements (6.1.6, "no factors
// smaller than 752"), which boulder's goodkey and zlint use too. A modulus
// sharing one of them is broken. A larger bound would cost more per
// request than every other key check together (primes below 2^12 about
// 80 µs, 2^16 about 0.8 ms, against 15 µs here) and catch only keys made
// to be weak: no key generator that draws its primes at random makes one.
var smallPrimesProduct = func() *big.Int {
	p := big.NewInt(1)
	for n := int64(3); n < 752; n += 2 {
		if big.NewInt(n).ProbablyPrime(0) {
			p.Mul(p, big.NewInt(n))
		}
	}
	return p
}()

func hasSmallFactor(n *big.Int) bool {
	if n.Bit(0) == 0 {
		return true // even
	}
	return new(big.Int).GCD(nil, nil, n, smallPrimesProduct).Cmp(big.NewInt(1)) != 0
}

// fermatRounds is how many steps of Fermat's factorization are tried, as in
// boulder's goodkey: enough to catch keys generated with primes too close
// together (CVE-2022-26320 and similar).
const fermatRounds = 100

// Residue filters for the perfect-square test: a square is a quadratic
// residue modulo each of these, and fewer than 1% of non-squares pass all of
// them, so the expensive square root is rarely computed.
var squareModuli = [...]uint64{64, 63, 65, 11}

var quadResidues = func() [len(squareModuli)][]bool {
	var r [len(squareModuli)][]bool
	for i, m := range squareModuli {
		r[i] = make([]bool, m)
		for x := range m {
			r[i][(x*x)%m] = true
		}
	}
	return r
}()

// fermatFactorable reports whether n = a² − b² for some a in
// [⌈√n⌉, ⌈√n⌉+rounds), i.e. whether its two factors differ by less than
// about √(8·rounds)·n^(1/4) (2^517 for a 2048-bit modulus and 100 rounds).
func fermatFactorable(n *big.Int, rounds int) bool {
	a := new(big.Int).Sqrt(n)
	b2 := new(big.Int).Mul(a, a)
	if b2.Cmp(n) == 0 {
		return true // a perfect square
	}
	a.Add(a, big.NewInt(1))
	b2.Mul(a, a).Sub(b2, n) // b2 = a² − n
	// Track a and b2 modulo each filter modulus to test residues cheaply.
	var am, bm [len(squareModuli)]uint64
	for i, m := range squareModuli {
		mm := new(big.Int).SetUint64(m)
		am[i] = new(big.Int).Mod(a, mm).Uint64()
		bm[i] = new(big.Int).Mod(b2, mm).Uint64()
	}
	root := new(big.Int)
	sq := new(big.Int)
	step := new(big.Int)
	for range rounds {
		candidate := true
		for i := range squareModuli {
			if !quadResidues[i][bm[i]] {
				candidate = false
				break
			}
		}
		if candidate {
			root.Sqrt(b2)
			if sq.Mul(root, root).Cmp(b2) == 0 {
				return true
			}
		}
		// (a+1)² − n = b2 + 2a + 1
		step.Lsh(a, 1).Add(step, big.NewInt(1))
		b2.Add(b2, step)
		a.Add(a, big.NewInt(1))
		for i, m := range squareModuli {
			bm[i] = (bm[i] + 2*am[i] + 1) % m
			am[i] = (am[i] + 1) % m
		}
	}
	return false
}
