/*
 * fuzz_token.c -- libFuzzer target for the bearer token parsers
 * (src/security/token.c).
 *
 * The input is read three ways: as a static token file (written to a
 * memfd and loaded by path, as --token-auth-file would be), as an
 * Authorization header value, and as a --ttl lifetime. What parses is
 * checked: a loaded file answers lookups and its warnings are strings; a
 * header token is non-empty, has no space and lies inside the input; a
 * lifetime is within range.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "security/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];

static void check_file(const uint8_t *data, size_t size)
{
	token_file *f = NULL;
	char err[512];
	size_t i, n;
	int r;

	if (memfd < 0) {
		memfd = memfd_create("fuzz-tokens.csv", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d",
			 memfd);
	}
	if (ftruncate(memfd, 0) < 0 ||
	    (size && pwrite(memfd, data, size, 0) != (ssize_t)size))
		abort();
	err[0] = '\0';
	r = token_file_load(memfd_path, &f, err, sizeof(err));
	if (r) {
		if (f || !err[0] || (r != -EINVAL && r != -ENOMEM))
			abort();
		return;
	}
	if (!f)
		abort();
	n = token_file_nwarnings(f);
	for (i = 0; i < n; i++)
		if (!token_file_warning(f, i))
			abort();
	if (token_file_warning(f, n))
		abort();
	/* the first field of a plain first line is a token of the file,
	 * unless a later line has it too: then it still resolves */
	{
		char tok[64];
		size_t k = 0;

		while (k < size && k < sizeof(tok) - 1 && data[k] != ',' &&
		       data[k] != '\n' && data[k] != '\r' && data[k] != '"' &&
		       data[k] != '\0') {
			tok[k] = (char)data[k];
			k++;
		}
		tok[k] = '\0';
		if (k && k < sizeof(tok) - 1 && k < size && data[k] == ',') {
			const token_entry *e = token_file_find(f, tok);

			if (!e || !e->user || !e->uid || !e->user[0])
				abort();
			for (i = 0; i < e->ngroups; i++)
				if (!e->groups[i])
					abort();
		}
	}
	if (token_file_find(f, "") || token_file_find(f, NULL))
		abort();
	token_file_free(f);
}

static void check_header(const char *s)
{
	char out[TOKEN_BEARER_MAX];
	int r = token_from_header(s, out, sizeof(out));

	if (r == 0) {
		if (!out[0] || strchr(out, ' ') || !strstr(s, out))
			abort();
	} else if (r != -ENOENT && r != -EINVAL && r != -E2BIG) {
		abort();
	}
}

static void check_ttl(const char *s)
{
	char err[256];
	int64_t secs = -1;
	int r = token_parse_ttl(s, &secs, err, sizeof(err));

	if (r == 0) {
		if (secs < 0 || secs > 100LL * 366 * 86400)
			abort();
	} else if ((r != -EINVAL && r != -ERANGE) || secs != -1) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	check_file(data, size);
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_header(s);
	check_ttl(s);
	free(s);
	return 0;
}
