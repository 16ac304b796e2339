# pg_elt: in-database ELT models and data activation for PostgreSQL.
EXTENSION = pg_elt
EXTVERSION = 0.1.0

MODULE_big = pg_elt
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))

# The install script is assembled from the parts that live beside the C code
# of each component; the order matters (later parts use earlier objects).
SQL_PARTS = src/core/header.sql \
	src/core/core.sql \
	src/models/catalog.sql \
	src/models/models.sql \
	src/models/tests.sql \
	src/models/run.sql \
	src/models/lineage.sql \
	$(sort $(wildcard src/http/*.sql)) \
	$(sort $(wildcard src/activation/*.sql)) \
	$(sort $(wildcard src/worker/*.sql))

DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard src/updates/$(EXTENSION)--*--*.sql)
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql

# Regression suites: sql/<name>.sql against expected/<name>.out, in this order.
REGRESS = $(shell cat test/regress_schedule 2>/dev/null)
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CPPFLAGS = -I$(srcdir)/src -DELT_VERSION=\"$(EXTVERSION)\"
ifdef WERROR
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
endif
SHLIB_LINK += -lcurl -ljansson -lcrypto

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
# A fresh machine has no PGXS yet: `make test` and `make demo` install it first.
-include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) pg_elt.control Makefile
	@grep -q "^default_version = '$(EXTVERSION)'" pg_elt.control || \
		{ echo "pg_elt.control default_version differs from EXTVERSION $(EXTVERSION)"; exit 1; }
	cat $(SQL_PARTS) > $@

.PHONY: demo test deps bench
deps:
	@test/deps.sh

test:
	@test/run.sh

demo:
	@test/demo/demo.sh

bench:
	@bench/run.sh

# Every object depends on every header: headers are few and small.
$(OBJS): $(wildcard src/*.h src/*/*.h)
