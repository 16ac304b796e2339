/*
 * bare_client.c
 *		Reference HTTP client of benchmark B4a: plain libcurl multi, no
 *		PostgreSQL. Sends N POSTs of a small JSON body to URL with at most C in
 *		flight over kept-alive connections, and prints requests/s. B4a is the
 *		ratio of the engine's throughput (elt_http_bench, same body, same
 *		sink, same run) to this one's.
 *
 * Build:	bench/build.sh   (cc -O2 -Wall -o bench/bare_client bench/bare_client.c -lcurl)
 * Run:		bench/bare_client http://127.0.0.1:8080/sink 20000 32
 * Output:	one line, "requests=N concurrency=C ok=K errors=E seconds=S requests_per_s=R"
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Slot
{
	CURL	   *easy;
	char		body[96];
} Slot;

/* discard response bodies */
static size_t
Discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Configures slot for request number `id` and adds it to the multi. */
static void
Start(CURLM *multi, Slot *slot, const char *url, struct curl_slist *headers, long id)
{
	int			len = snprintf(slot->body, sizeof(slot->body),
							   "{\"id\": %ld, \"name\": \"row %ld\"}", id, id);

	curl_easy_setopt(slot->easy, CURLOPT_URL, url);
	curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, slot->body);
	curl_easy_setopt(slot->easy, CURLOPT_WRITEFUNCTION, Discard);
	curl_easy_setopt(slot->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(slot->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(slot->easy, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(slot->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(slot->easy, CURLOPT_PRIVATE, slot);
	curl_multi_add_handle(multi, slot->easy);
}

int
main(int argc, char **argv)
{
	const char *url;
	long		n;
	long		c;
	long		started = 0;
	long		done = 0;
	long		ok = 0;
	long		errors = 0;
	Slot	   *slots;
	Slot	  **idle;
	long		nidle;
	CURLM	   *multi;
	struct curl_slist *headers = NULL;
	double		t0;
	double		secs;
	long		i;

	if (argc != 4 || (n = atol(argv[2])) < 1 || (c = atol(argv[3])) < 1)
	{
		fprintf(stderr, "usage: %s URL N CONCURRENCY\n", argv[0]);
		return 2;
	}
	url = argv[1];

	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, c);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, c);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");

	slots = calloc(c, sizeof(Slot));
	idle = calloc(c, sizeof(Slot *));
	for (i = 0; i < c; i++)
	{
		slots[i].easy = curl_easy_init();
		idle[i] = &slots[i];
	}
	nidle = c;

	t0 = Now();
	while (done < n)
	{
		CURLMsg    *msg;
		int			running;
		int			left;

		while (nidle > 0 && started < n)
			Start(multi, idle[--nidle], url, headers, started++);

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Slot	   *slot;
			long		status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
				ok++;
			else
				errors++;
			curl_multi_remove_handle(multi, slot->easy);
			idle[nidle++] = slot;
			done++;
		}
		if (done < n && (nidle == 0 || started == n))
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	secs = Now() - t0;

	printf("requests=%ld concurrency=%ld ok=%ld errors=%ld seconds=%.3f requests_per_s=%.1f\n",
		   n, c, ok, errors, secs, n / secs);

	for (i = 0; i < c; i++)
		curl_easy_cleanup(slots[i].easy);
	curl_slist_free_all(headers);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	free(slots);
	free(idle);
	return errors > 0 ? 1 : 0;
}
