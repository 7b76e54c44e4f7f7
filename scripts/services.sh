# Sourced by scripts/test: make sure PostgreSQL (with PostGIS), MariaDB, Redis,
# the database client tools and Chromium exist and run. Installs from Debian's
# packages only what is missing; starts only what is stopped.
set -euo pipefail

need=()
command -v pg_dump >/dev/null || need+=(postgresql postgresql-client)
command -v mariadb >/dev/null || command -v mysql >/dev/null || need+=(mariadb-server mariadb-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v pg_isready >/dev/null || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  apt_install "${need[@]}"
fi
pg_version="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
if [ -n "$pg_version" ] && [ ! -f "/usr/share/postgresql/$pg_version/extension/postgis.control" ]; then
  echo "==> installing PostGIS for PostgreSQL $pg_version"
  apt_install "postgresql-$pg_version-postgis-3"
fi

# PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "==> starting PostgreSQL"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    pg_createcluster "$pg_version" main >/dev/null
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -n | tail -1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
# Tests connect over TCP. Where the superuser has no password access there
# (Debian's default is peer/scram), provision a dedicated superuser role.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1 </dev/null; then
  runuser -u postgres -- psql -q -d postgres -c \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='drc') THEN
       CREATE ROLE drc LOGIN SUPERUSER PASSWORD 'drc'; END IF; END\$\$;" >/dev/null
  export DRC_PG_USER=drc DRC_PG_PASSWORD=drc
fi

# MariaDB
mysql_client="$(command -v mariadb || command -v mysql)"
if ! mysqladmin ping -h 127.0.0.1 --silent >/dev/null 2>&1; then
  echo "==> starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 30); do mysqladmin ping -h 127.0.0.1 --silent >/dev/null 2>&1 && break; sleep 1; done
fi
if ! "$mysql_client" -h 127.0.0.1 -u root -e 'select 1' >/dev/null 2>&1 </dev/null; then
  "$mysql_client" -u root -e "CREATE USER IF NOT EXISTS 'drc'@'127.0.0.1' IDENTIFIED BY 'drc';
    CREATE USER IF NOT EXISTS 'drc'@'localhost' IDENTIFIED BY 'drc';
    GRANT ALL PRIVILEGES ON *.* TO 'drc'@'127.0.0.1' WITH GRANT OPTION;
    GRANT ALL PRIVILEGES ON *.* TO 'drc'@'localhost' WITH GRANT OPTION;" </dev/null
  export DRC_MYSQL_USER=drc DRC_MYSQL_PASSWORD=drc
fi

# Redis (the shared broker of the worker tests; kill tests start their own)
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
