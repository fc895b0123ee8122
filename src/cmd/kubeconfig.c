/*
 * kubeconfig.c -- the admin kubeconfig that `signalbox serve` writes, and
 * reading it back for the commands that talk to the server (`signalbox
 * token`). Only the shape we write is read: one cluster, one user, the
 * PEMs inline as *-data fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = '\0';
			if (len)
				*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* base64 of a file's bytes (new string), or NULL. */
static char *file_b64(const char *path)
{
	size_t len;
	char *raw = read_file(path, &len), *out;

	if (!raw)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (unsigned char *)raw,
				(int)len);
	free(raw);
	return out;
}

int kubeconfig_write(const char *path, const char *server, const char *ca,
		     const char *cert, const char *key)
{
	char tmp[4200];
	char *ca64 = file_b64(ca), *cert64 = cert ? file_b64(cert) : NULL;
	char *key64 = key ? file_b64(key) : NULL;
	FILE *f = NULL;
	int fd, rc = -1;

	if ((ca && !ca64) || (cert && !cert64) || (key && !key64)) {
		fprintf(stderr, "signalbox: cannot read the certificates for %s\n",
			path);
		goto out;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		fprintf(stderr, "signalbox: cannot write %s: %s\n", tmp,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	fprintf(f,
		"apiVersion: v1\n"
		"kind: Config\n"
		"clusters:\n"
		"- name: signalbox\n"
		"  cluster:\n"
		"    server: %s\n",
		server);
	if (ca64)
		fprintf(f, "    certificate-authority-data: %s\n", ca64);
	fprintf(f, "contexts:\n"
		   "- name: signalbox\n"
		   "  context:\n"
		   "    cluster: signalbox\n"
		   "    user: admin\n"
		   "    namespace: default\n"
		   "current-context: signalbox\n"
		   "users:\n"
		   "- name: admin\n");
	if (cert64 && key64)
		fprintf(f,
			"  user:\n"
			"    client-certificate-data: %s\n"
			"    client-key-data: %s\n",
			cert64, key64);
	else
		fprintf(f, "  user: {}\n");
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		f = NULL;
		goto out;
	}
	fclose(f);
	f = NULL;
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "signalbox: cannot write %s: %s\n", path,
			strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(ca64);
	free(cert64);
	free(key64);
	return rc;
}

/* The value after "<field>: " on the first line that has it (new). */
static char *field(const char *text, const char *name)
{
	const char *p = text;
	size_t n = strlen(name);

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') &&
		    p[n] == ':' && p[n + 1] == ' ') {
			const char *v = p + n + 2, *e = strchr(v, '\n');

			return strndup(v, e ? (size_t)(e - v) : strlen(v));
		}
		p += n;
	}
	return NULL;
}

/* Decode base64 into a new NUL-terminated string. */
static char *b64_decode(const char *in)
{
	size_t n = in ? strlen(in) : 0;
	unsigned char *out;
	int len;

	if (!n)
		return NULL;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	while (len > 0 && out[len - 1] == '\0')
		len--;
	out[len] = '\0';
	return (char *)out;
}

int kubeconfig_read(const char *path, kubeconfig *kc)
{
	char *text = read_file(path, NULL), *v;

	memset(kc, 0, sizeof(*kc));
	if (!text) {
		fprintf(stderr, "signalbox: cannot read %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	kc->server = field(text, "server");
	v = field(text, "certificate-authority-data");
	kc->ca_pem = b64_decode(v);
	free(v);
	v = field(text, "client-certificate-data");
	kc->cert_pem = b64_decode(v);
	free(v);
	v = field(text, "client-key-data");
	kc->key_pem = b64_decode(v);
	free(v);
	free(text);
	if (!kc->server) {
		fprintf(stderr, "signalbox: %s names no server\n", path);
		kubeconfig_free(kc);
		return -1;
	}
	return 0;
}

void kubeconfig_free(kubeconfig *kc)
{
	free(kc->server);
	free(kc->ca_pem);
	free(kc->cert_pem);
	free(kc->key_pem);
	memset(kc, 0, sizeof(*kc));
}
