//go:build cgo && linux

package opensslrsa

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

// The few libcrypto functions used, resolved by dlsym from libcrypto.so.3
// at run time: the binary does not link OpenSSL, and runs without it.
typedef struct {
	void *handle;
	unsigned long (*version_num)(void);
	void *(*d2i_private_key)(int type, void **a, const unsigned char **pp, long length);
	void (*pkey_free)(void *pkey);
	void *(*ctx_new)(void *pkey, void *engine);
	void (*ctx_free)(void *ctx);
	int (*sign_init)(void *ctx);
	int (*sign)(void *ctx, unsigned char *sig, size_t *siglen, const unsigned char *tbs, size_t tbslen);
	int (*decrypt_init)(void *ctx);
	int (*decrypt)(void *ctx, unsigned char *out, size_t *outlen, const unsigned char *in, size_t inlen);
	int (*set_rsa_padding)(void *ctx, int pad);
	int (*set_signature_md)(void *ctx, const void *md);
	void (*err_clear)(void);
	const void *md[5]; // SHA-1, SHA-224, SHA-256, SHA-384, SHA-512
} scepter_ossl;

#define SCEPTER_EVP_PKEY_RSA 6
#define SCEPTER_RSA_PKCS1_PADDING 1
#define SCEPTER_RSA_NO_PADDING 3

static scepter_ossl *scepter_ossl_open(const char *name) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		return NULL;
	}
	scepter_ossl *o = calloc(1, sizeof *o);
	if (o == NULL) {
		dlclose(h);
		return NULL;
	}
	o->handle = h;
	o->version_num = dlsym(h, "OpenSSL_version_num");
	o->d2i_private_key = dlsym(h, "d2i_PrivateKey");
	o->pkey_free = dlsym(h, "EVP_PKEY_free");
	o->ctx_new = dlsym(h, "EVP_PKEY_CTX_new");
	o->ctx_free = dlsym(h, "EVP_PKEY_CTX_free");
	o->sign_init = dlsym(h, "EVP_PKEY_sign_init");
	o->sign = dlsym(h, "EVP_PKEY_sign");
	o->decrypt_init = dlsym(h, "EVP_PKEY_decrypt_init");
	o->decrypt = dlsym(h, "EVP_PKEY_decrypt");
	o->set_rsa_padding = dlsym(h, "EVP_PKEY_CTX_set_rsa_padding");
	o->set_signature_md = dlsym(h, "EVP_PKEY_CTX_set_signature_md");
	o->err_clear = dlsym(h, "ERR_clear_error");
	static const char *mds[5] = {"EVP_sha1", "EVP_sha224", "EVP_sha256", "EVP_sha384", "EVP_sha512"};
	int ok = o->version_num && o->d2i_private_key && o->pkey_free && o->ctx_new && o->ctx_free &&
		o->sign_init && o->sign && o->decrypt_init && o->decrypt && o->set_rsa_padding &&
		o->set_signature_md && o->err_clear;
	for (int i = 0; ok && i < 5; i++) {
		const void *(*md)(void) = dlsym(h, mds[i]);
		ok = md != NULL && (o->md[i] = md()) != NULL;
	}
	if (!ok) {
		free(o);
		dlclose(h);
		return NULL;
	}
	return o;
}

static unsigned long scepter_ossl_version(scepter_ossl *o) { return o->version_num(); }

static void *scepter_ossl_key(scepter_ossl *o, const unsigned char *der, long len) {
	void *k = o->d2i_private_key(SCEPTER_EVP_PKEY_RSA, NULL, &der, len);
	// The decoders OpenSSL tries in turn may leave errors behind even when
	// one succeeds; the thread's error queue must not grow.
	o->err_clear();
	return k;
}

static void scepter_ossl_key_free(scepter_ossl *o, void *k) { o->pkey_free(k); }

// scepter_ossl_op runs one private-key operation with a context of its
// own, and returns 1 on success:
//   - md >= 0: a PKCS #1 v1.5 signature of a digest of the hash md (an index
//     into o->md);
//   - md < 0: c^d mod n (blinded, constant time) with no padding check: the
//     caller checks the padding in constant time, so that no error path
//     inside OpenSSL can tell a good padding from a bad one.
static int scepter_ossl_op(scepter_ossl *o, void *k, int md, const unsigned char *in, size_t inlen,
		unsigned char *out, size_t *outlen) {
	void *ctx = o->ctx_new(k, NULL);
	int ok = ctx != NULL;
	if (ok && md >= 0) {
		ok = o->sign_init(ctx) > 0 &&
			o->set_rsa_padding(ctx, SCEPTER_RSA_PKCS1_PADDING) > 0 &&
			o->set_signature_md(ctx, o->md[md]) > 0 &&
			o->sign(ctx, out, outlen, in, inlen) > 0;
	} else if (ok) {
		ok = o->decrypt_init(ctx) > 0 &&
			o->set_rsa_padding(ctx, SCEPTER_RSA_NO_PADDING) > 0 &&
			o->decrypt(ctx, out, outlen, in, inlen) > 0;
	}
	if (ctx != NULL) {
		o->ctx_free(ctx);
	}
	if (!ok) {
		o->err_clear();
	}
	return ok;
}
*/
import "C"

import (
	"crypto"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// libraryName is OpenSSL 3's libcrypto; its ABI is stable across 3.x.
const libraryName = "libcrypto.so.3"

// Library is libcrypto, loaded.
type Library struct {
	o       *C.scepter_ossl
	version uint64
	// slots bounds the operations inside OpenSSL at once to GOMAXPROCS. A
	// goroutine in a C call holds no P, so without it every request's
	// thread would run its RSA at once on the same cores, the kernel
	// switching among them; beyond the bound they wait their turn in Go.
	slots chan struct{}
}

// Open loads libcrypto.so.3. It fails when the library is missing, lacks a
// function used here, or is older than 3.0.
func Open() (*Library, error) {
	name := C.CString(libraryName)
	defer C.free(unsafe.Pointer(name))
	o := C.scepter_ossl_open(name)
	if o == nil {
		return nil, fmt.Errorf("%w: cannot load %s or a function of it", ErrUnavailable, libraryName)
	}
	v := uint64(C.scepter_ossl_version(o))
	if v < 0x30000000 {
		return nil, fmt.Errorf("%w: %s is version %#x, want 3.0 or later", ErrUnavailable, libraryName, v)
	}
	// The handle stays open for the life of the process: keys made from it
	// may outlive any one Library value.
	return &Library{o: o, version: v, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

type pkey struct {
	lib *Library
	p   unsafe.Pointer
}

func (l *Library) importKey(der []byte) (*pkey, error) {
	p := C.scepter_ossl_key(l.o, (*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if p == nil {
		return nil, errors.New("opensslrsa: OpenSSL refused the key")
	}
	k := &pkey{lib: l, p: p}
	runtime.AddCleanup(k, func(p unsafe.Pointer) { C.scepter_ossl_key_free(l.o, p) }, p)
	return k, nil
}

func (k *pkey) sign(h crypto.Hash, digest, sig []byte) (int, error) {
	md := mdIndex(h)
	if md < 0 {
		return 0, fmt.Errorf("opensslrsa: hash %v not supported", h)
	}
	return k.op(C.int(md), digest, sig, "signing")
}

func (k *pkey) decryptRaw(in, out []byte) (int, error) {
	return k.op(-1, in, out, "decryption")
}

// op runs scepter_ossl_op in one of the library's slots.
func (k *pkey) op(md C.int, in, out []byte, what string) (int, error) {
	n := C.size_t(len(out))
	k.lib.slots <- struct{}{}
	defer func() { <-k.lib.slots }()
	if C.scepter_ossl_op(k.lib.o, k.p, md, (*C.uchar)(unsafe.Pointer(&in[0])), C.size_t(len(in)),
		(*C.uchar)(unsafe.Pointer(&out[0])), &n) != 1 {
		return 0, fmt.Errorf("opensslrsa: %s failed", what)
	}
	runtime.KeepAlive(k)
	return int(n), nil
}
