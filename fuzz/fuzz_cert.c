/*
 * fuzz_cert.c -- libFuzzer target for reading the identity out of an
 * untrusted certificate (pki_cert_identity in src/security/pki.c), PEM or
 * DER.
 *
 * An identity that comes back has a non-empty user, and every string in
 * it is a whole C string: a name with a NUL byte inside must have been
 * refused, never cut short.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pki_identity id;
	char err[256];
	size_t i;
	int r;

	err[0] = '\0';
	r = pki_cert_identity((const char *)data, size, &id, err, sizeof(err));
	if (r) {
		if ((r != -EINVAL && r != -ENOMEM) || !err[0] || id.user ||
		    id.groups)
			abort();
		return 0;
	}
	if (!id.user || !id.user[0])
		abort();
	for (i = 0; i < id.ngroups; i++)
		if (!id.groups[i])
			abort();
	pki_identity_free(&id);
	if (id.user || id.groups || id.ngroups)
		abort();
	return 0;
}
