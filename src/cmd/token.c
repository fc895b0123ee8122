/*
 * token.c -- `signalbox token create --user U [--group G]... [--ttl 24h]`
 * and `signalbox token revoke TOKEN`.
 *
 * The token is made here, printed once, and only its SHA-256 goes to the
 * server, as the name of a Token object (auth.signalbox.dev/v1), through
 * the API with the admin credentials of DIR/admin.kubeconfig. Revoking
 * deletes that object; the server stops accepting the token at once.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "security/token.h"

#define TOKENS_PATH "/apis/auth.signalbox.dev/v1/tokens"

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
	json_t **buf = arg;
	size_t len = sz * n;
	const char *old = json_string_value(*buf);
	char *joined = malloc(strlen(old) + len + 1);

	if (!joined)
		return 0;
	strcpy(joined, old);
	memcpy(joined + strlen(old), p, len);
	joined[strlen(old) + len] = '\0';
	json_string_set(*buf, joined);
	free(joined);
	return len;
}

/* One API call with the kubeconfig's credentials. Returns the HTTP code (0
 * on a transport error, with the message printed); *reply (may be NULL)
 * gets the body, new. */
static long call(const kubeconfig *kc, const char *method, const char *path,
		 const char *body, char **reply)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct curl_blob ca, cert, key;
	json_t *buf = json_string("");
	char url[2048], errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;

	if (!c || !buf)
		goto out;
	snprintf(url, sizeof url, "%s%s", kc->server, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
	if (kc->ca_pem) {
		ca = (struct curl_blob){kc->ca_pem, strlen(kc->ca_pem),
					CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
	}
	if (kc->cert_pem && kc->key_pem) {
		cert = (struct curl_blob){kc->cert_pem, strlen(kc->cert_pem),
					  CURL_BLOB_COPY};
		key = (struct curl_blob){kc->key_pem, strlen(kc->key_pem),
					 CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
	if (curl_easy_perform(c) != CURLE_OK)
		fprintf(stderr, "signalbox token: %s: %s\n", url, errbuf);
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (reply)
		*reply = strdup(json_string_value(buf));
out:
	curl_slist_free_all(h);
	if (c)
		curl_easy_cleanup(c);
	json_decref(buf);
	return code;
}

/* The Status message of a failed call, for the user. */
static void print_failure(const char *what, long code, const char *reply)
{
	json_t *j = reply ? json_loads(reply, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "message"));

	fprintf(stderr, "signalbox token: %s failed (HTTP %ld): %s\n", what,
		code, msg ? msg : (reply && *reply ? reply : "no answer"));
	json_decref(j);
}

static const char create_usage[] =
	"usage: signalbox token create --user USER [--group GROUP]... "
	"[--ttl DURATION]\n"
	"                              [--description TEXT] [--data-dir DIR]\n"
	"  Prints a new bearer token once; the server keeps only its "
	"SHA-256.\n"
	"  --ttl: 90s, 30m, 24h, 7d... (default 24h; 0 never expires)\n";

static int token_create(int argc, char **argv, const char *dir)
{
	static const struct option opts[] = {
		{"user", required_argument, NULL, 'u'},
		{"group", required_argument, NULL, 'g'},
		{"ttl", required_argument, NULL, 't'},
		{"description", required_argument, NULL, 'D'},
		{"data-dir", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *user = NULL, *desc = NULL, *ttl = "24h";
	json_t *groups = json_array(), *obj = NULL;
	char tok[128], hash[65], path[4096], err[256], *body = NULL,
		*reply = NULL;
	int64_t secs;
	kubeconfig kc;
	long code;
	int c, rc = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			user = optarg;
			break;
		case 'g':
			json_array_append_new(groups, json_string(optarg));
			break;
		case 't':
			ttl = optarg;
			break;
		case 'D':
			desc = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(create_usage, stdout);
			json_decref(groups);
			return 0;
		default:
			fputs(create_usage, stderr);
			json_decref(groups);
			return 2;
		}
	}
	if (!user || !*user || optind != argc) {
		fputs(create_usage, stderr);
		json_decref(groups);
		return 2;
	}
	if (strcmp(ttl, "0") && token_parse_ttl(ttl, &secs, err, sizeof err)) {
		fprintf(stderr, "signalbox token: --ttl: %s\n", err);
		json_decref(groups);
		return 2;
	}
	snprintf(path, sizeof path, "%s/admin.kubeconfig", dir);
	if (kubeconfig_read(path, &kc)) {
		json_decref(groups);
		return 1;
	}
	if (token_generate(tok, sizeof tok)) {
		fprintf(stderr, "signalbox token: no randomness\n");
		goto out;
	}
	token_hash(tok, hash);
	obj = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:O}}", "apiVersion",
			"auth.signalbox.dev/v1", "kind", "Token", "metadata",
			"name", hash, "spec", "user", user, "groups", groups);
	if (strcmp(ttl, "0")) {
		time_t t = time(NULL) + (time_t)secs;
		struct tm tm;
		char exp[32];

		gmtime_r(&t, &tm);
		strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(json_object_get(obj, "spec"), "expiresAt",
				    json_string(exp));
	}
	if (desc)
		json_object_set_new(json_object_get(obj, "spec"),
				    "description", json_string(desc));
	body = json_dumps(obj, JSON_COMPACT);
	code = body ? call(&kc, "POST", TOKENS_PATH, body, &reply) : 0;
	if (code != 201) {
		if (code)
			print_failure("storing the token", code, reply);
		goto out;
	}
	/* The only time the token is shown. */
	printf("%s\n", tok);
	rc = 0;
out:
	explicit_bzero(tok, sizeof tok);
	free(body);
	free(reply);
	json_decref(obj);
	json_decref(groups);
	kubeconfig_free(&kc);
	return rc;
}

static int token_revoke(int argc, char **argv, const char *dir)
{
	char hash[65], path[4096], *reply = NULL;
	kubeconfig kc;
	long code;

	if (argc != 2) {
		fprintf(stderr, "usage: signalbox token revoke TOKEN "
				"[--data-dir DIR before 'revoke']\n");
		return 2;
	}
	token_hash(argv[1], hash);
	snprintf(path, sizeof path, "%s/admin.kubeconfig", dir);
	if (kubeconfig_read(path, &kc))
		return 1;
	snprintf(path, sizeof path, "%s/%s", TOKENS_PATH, hash);
	code = call(&kc, "DELETE", path, NULL, &reply);
	kubeconfig_free(&kc);
	if (code != 200) {
		if (code)
			print_failure("revoking the token", code, reply);
		free(reply);
		return 1;
	}
	free(reply);
	printf("signalbox token: revoked\n");
	return 0;
}

int cmd_token(int argc, char **argv)
{
	const char *dir = "./signalbox-data";
	int i = 1;

	if (argc > 2 && !strcmp(argv[1], "--data-dir")) {
		dir = argv[2];
		i = 3;
	}
	if (argc > i && !strcmp(argv[i], "create"))
		return token_create(argc - i, argv + i, dir);
	if (argc > i && !strcmp(argv[i], "revoke"))
		return token_revoke(argc - i, argv + i, dir);
	fprintf(stderr, "usage: signalbox token create|revoke ...\n"
			"  'signalbox token create --help' for the options\n");
	return 2;
}
