#ifndef PRIVATUS_WAL_WRITES_H
#define PRIVATUS_WAL_WRITES_H

#include <stdint.h>

/// Registers, once per process and as the default, a VFS over SQLite's default one that writes
/// each transaction's frames to a WAL file with one `pwrite` instead of two per frame (SQLite
/// writes a frame's 24-byte header and its page separately; a commit of nine pages is 18 system
/// calls). A new frame's header and the page right behind it are gathered while contiguous and
/// written out when the commit frame's page arrives (so the commit returns any write error, and
/// the file holds the frames before SQLite publishes them in the WAL index); before any other
/// operation on the WAL (read, sync, size, truncate, file control, close) and any other write to
/// it; before the database's WAL write lock, or in exclusive locking mode its file lock, is
/// released (a rolled-back transaction's spilled frames); and past 4 MiB. Other files (the
/// database, the shared-memory index) pass straight through, and so does a WAL without
/// powersafe overwrite. Must run before the first database is opened. Returns 0 (SQLITE_OK), or
/// the error of registering it.
int privatus_wal_writes_register(void);

/// Whether WAL files opened from now on gather their writes (1, the default) or pass them
/// straight through (0): for `privatus bench storage`'s reference in the same run, not for the
/// product.
void privatus_wal_writes_gather(int on);

/// Writes SQLite asked of WAL files, and writes made to them, since the process started.
void privatus_wal_writes_counts(uint64_t *seen, uint64_t *made);

#endif
