// A VFS shim over SQLite's default VFS that gathers the writes of one transaction to a WAL file
// into one `pwrite`: see include/privatus_wal_writes.h.

#include "privatus_wal_writes.h"

#include <sqlite3.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/// SQLite's WAL layout (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte header,
/// then frames, each a 24-byte frame header and a page. Bytes 4-7 of a frame header (big
/// endian) hold the database's size in pages after a commit, and zero in every other frame.
enum { WAL_HEADER_BYTES = 32, FRAME_HEADER_BYTES = 24 };

/// Gathered bytes past this are written out before more are added.
enum { MAXIMUM_GATHERED = 4 << 20 };

/// The most one real write carries: the unix VFS writes at most 128 KiB - 1 bytes per call (it
/// masks the length with 0x1ffff; SQLite's own writes are pages of at most 64 KiB), and a longer
/// one would come back short, as SQLITE_FULL.
enum { WRITE_PIECE = 64 << 10 };

typedef struct GatheringFile {
    sqlite3_file base;
    /// The default VFS's file, in the memory after this struct.
    sqlite3_file *real;
    /// A WAL file: its writes are gathered. Every other file passes straight through.
    int gathers;
    /// Bytes written by SQLite and not yet by us, to go at `start`.
    unsigned char *gathered;
    int gatheredBytes;
    int capacity;
    sqlite3_int64 start;
    /// Where the WAL's frames end: the highest offset + length written or gathered since the WAL's
    /// own header was last written (at offset 0). A new frame starts there; a write below it
    /// rewrites what is there (a page changed again, a checksum redone at commit).
    sqlite3_int64 appendEnd;
    /// The last write was a new frame's header (gathered): the next one is its page.
    int frameHeaderLast;
    /// ... and the frame is a commit frame: its page ends the transaction.
    int commitPageNext;
    /// A write of gathered bytes failed where SQLite may not look at the result (a hint, a lock
    /// release): the next write, read or sync returns it, so nothing that needed them succeeds.
    int failed;
    /// The database the file belongs to (its main file's name; NULL for a file of no database):
    /// a WAL file writes what it gathered before its database's write lock is released.
    const char *database;
    /// The gathering WAL files, linked for that (under `registryLock`).
    struct GatheringFile *next;
    struct GatheringFile *previous;
    /// This file's methods: the shim's, at the real file's version (xShm* from 2, xFetch from 3).
    sqlite3_io_methods methods;
} GatheringFile;

static pthread_mutex_t registryLock = PTHREAD_MUTEX_INITIALIZER;
static GatheringFile *registry;

static sqlite3_vfs *realVFS;
static sqlite3_vfs gatheringVFS;

/// Whether WAL files opened from now on gather their writes (``privatus_wal_writes_gather``).
static _Atomic int gathering = 1;

static _Atomic uint64_t writesSeen;
static _Atomic uint64_t writesMade;

static sqlite3_file *realFile(sqlite3_file *file) { return ((GatheringFile *)file)->real; }

/// Writes what is gathered, if anything, in pieces of at most ``WRITE_PIECE`` bytes. Returns the
/// first error of the real writes.
static int writeGathered(GatheringFile *file) {
    if (file->gatheredBytes == 0) return SQLITE_OK;
    int rc = SQLITE_OK;
    for (int done = 0; done < file->gatheredBytes && rc == SQLITE_OK; done += WRITE_PIECE) {
        int piece = file->gatheredBytes - done < WRITE_PIECE ? file->gatheredBytes - done : WRITE_PIECE;
        rc = file->real->pMethods->xWrite(file->real, file->gathered + done, piece, file->start + done);
        atomic_fetch_add_explicit(&writesMade, 1, memory_order_relaxed);
    }
    file->gatheredBytes = 0;
    // A buffer grown for one large transaction is not kept.
    if (file->capacity > (1 << 20)) {
        free(file->gathered);
        file->gathered = NULL;
        file->capacity = 0;
    }
    return rc;
}

/// The failure latched by an earlier write of gathered bytes, once (then cleared).
static int takeFailure(GatheringFile *file) {
    int rc = file->failed;
    file->failed = SQLITE_OK;
    return rc;
}

/// Writes what the WAL file of the connection whose database file is `database` gathered. Called
/// before that connection releases the WAL's write lock or its lock on the database file: a
/// transaction that rolled back after spilling frames leaves them gathered (SQLite makes no call
/// on the WAL for a rollback), and they must reach the file before another connection may write
/// frames at the same offsets, as they would have without the shim. `database` is the name
/// SQLite opened the database file with, the same pointer `sqlite3_filename_database` gives for
/// the connection's WAL (the pager's filename): other connections to the same file have their
/// own, so their WAL files are not touched.
static void writeGatheredOf(const char *database) {
    if (database == NULL) return;
    pthread_mutex_lock(&registryLock);
    for (GatheringFile *file = registry; file != NULL; file = file->next) {
        // The lock release ignores a failure: it waits for the next write, read or sync.
        if (file->database == database) {
            int rc = writeGathered(file);
            if (rc != SQLITE_OK) file->failed = rc;
        }
    }
    pthread_mutex_unlock(&registryLock);
}

/// Writes `amount` bytes as SQLite asked, after what is gathered (so that the file sees the
/// writes in SQLite's order).
static int writeThrough(GatheringFile *file, const void *bytes, int amount, sqlite3_int64 offset) {
    int rc = takeFailure(file);
    if (rc != SQLITE_OK) return rc;
    rc = writeGathered(file);
    if (rc != SQLITE_OK) return rc;
    atomic_fetch_add_explicit(&writesMade, 1, memory_order_relaxed);
    return file->real->pMethods->xWrite(file->real, bytes, amount, offset);
}

/// Whether `amount` can be a database page: a power of two from 512 to 65,536.
static int pageSized(int amount) { return amount >= 512 && amount <= 65536 && (amount & (amount - 1)) == 0; }

/// Gathers a new frame's header (at the end of the frames) and the page that follows it, while
/// they are contiguous with what is gathered. Any other write goes through at once, after what is
/// gathered: the WAL's own header, a page rewritten in place, a frame header whose checksum
/// SQLite redoes at commit (after the commit frame's page, with no sync to follow at NORMAL), the
/// pieces of a padding frame split at a sync point, the frames of a SQLite that wrote them
/// differently.
static int gatheringWrite(sqlite3_file *base, const void *bytes, int amount, sqlite3_int64 offset) {
    GatheringFile *file = (GatheringFile *)base;
    atomic_fetch_add_explicit(&writesSeen, 1, memory_order_relaxed);
    if (offset == 0) file->appendEnd = 0;
    int pageOfFrame = file->frameHeaderLast && pageSized(amount);
    int endsTransaction = file->commitPageNext;
    int frameHeader = amount == FRAME_HEADER_BYTES && offset >= WAL_HEADER_BYTES && offset >= file->appendEnd;
    if (offset + amount > file->appendEnd) file->appendEnd = offset + amount;
    file->frameHeaderLast = frameHeader;
    // A frame header whose "size after commit" is not zero: the next write, its page, is the
    // transaction's last.
    const unsigned char *header = bytes;
    file->commitPageNext = frameHeader && (header[4] | header[5] | header[6] | header[7]) != 0;
    int contiguous = file->gatheredBytes == 0 || file->start + file->gatheredBytes == offset;
    if (!(frameHeader || pageOfFrame) || !contiguous) {
        file->frameHeaderLast = 0;
        file->commitPageNext = 0;
        return writeThrough(file, bytes, amount, offset);
    }
    int failure = takeFailure(file);
    if (failure != SQLITE_OK) return failure;
    if (file->gatheredBytes + amount > MAXIMUM_GATHERED) {
        int rc = writeGathered(file);
        if (rc != SQLITE_OK) return rc;
    }
    if (file->gatheredBytes == 0) file->start = offset;
    if (file->gatheredBytes + amount > file->capacity) {
        int capacity = file->capacity == 0 ? 64 << 10 : file->capacity;
        while (capacity < file->gatheredBytes + amount) capacity *= 2;
        unsigned char *grown = realloc(file->gathered, (size_t)capacity);
        if (grown == NULL) {
            file->frameHeaderLast = 0;
            file->commitPageNext = 0;
            return writeThrough(file, bytes, amount, offset);
        }
        file->gathered = grown;
        file->capacity = capacity;
    }
    memcpy(file->gathered + file->gatheredBytes, bytes, (size_t)amount);
    file->gatheredBytes += amount;
    // The commit's page: everything goes to the file now, so that an error reaches the commit
    // and a reader never sees a committed frame the file lacks.
    if (!(pageOfFrame && endsTransaction)) return SQLITE_OK;
    return writeGathered(file);
}

// Every other method of a WAL file writes what is gathered first, so it sees the file as SQLite
// wrote it.

static int gatheringClose(sqlite3_file *base) {
    GatheringFile *file = (GatheringFile *)base;
    pthread_mutex_lock(&registryLock);
    if (file->previous != NULL) file->previous->next = file->next; else registry = file->next;
    if (file->next != NULL) file->next->previous = file->previous;
    pthread_mutex_unlock(&registryLock);
    int written = writeGathered(file);
    int rc = file->real->pMethods->xClose(file->real);
    free(file->gathered);
    file->gathered = NULL;
    file->capacity = 0;
    return written != SQLITE_OK ? written : rc;
}

static int gatheringRead(sqlite3_file *base, void *bytes, int amount, sqlite3_int64 offset) {
    int rc = takeFailure((GatheringFile *)base);
    if (rc == SQLITE_OK) rc = writeGathered((GatheringFile *)base);
    if (rc != SQLITE_OK) return rc;
    return realFile(base)->pMethods->xRead(realFile(base), bytes, amount, offset);
}

static int gatheringTruncate(sqlite3_file *base, sqlite3_int64 size) {
    int rc = writeGathered((GatheringFile *)base);
    if (rc != SQLITE_OK) return rc;
    return realFile(base)->pMethods->xTruncate(realFile(base), size);
}

static int gatheringSync(sqlite3_file *base, int flags) {
    int rc = takeFailure((GatheringFile *)base);
    if (rc == SQLITE_OK) rc = writeGathered((GatheringFile *)base);
    if (rc != SQLITE_OK) return rc;
    return realFile(base)->pMethods->xSync(realFile(base), flags);
}

static int gatheringFileSize(sqlite3_file *base, sqlite3_int64 *size) {
    int rc = writeGathered((GatheringFile *)base);
    if (rc != SQLITE_OK) return rc;
    return realFile(base)->pMethods->xFileSize(realFile(base), size);
}

static int gatheringFileControl(sqlite3_file *base, int op, void *argument) {
    GatheringFile *file = (GatheringFile *)base;
    int rc = writeGathered(file);
    if (rc != SQLITE_OK) {
        // SQLite ignores the result of some controls (hints): the failure also waits for the
        // next write, read or sync.
        file->failed = rc;
        return rc;
    }
    return file->real->pMethods->xFileControl(file->real, op, argument);
}

// A file that does not gather passes every call straight through, as do a WAL's locks and
// shared-memory calls.

static int passClose(sqlite3_file *base) { return realFile(base)->pMethods->xClose(realFile(base)); }
static int passRead(sqlite3_file *base, void *bytes, int amount, sqlite3_int64 offset) {
    return realFile(base)->pMethods->xRead(realFile(base), bytes, amount, offset);
}
static int passWrite(sqlite3_file *base, const void *bytes, int amount, sqlite3_int64 offset) {
    return realFile(base)->pMethods->xWrite(realFile(base), bytes, amount, offset);
}
static int passTruncate(sqlite3_file *base, sqlite3_int64 size) {
    return realFile(base)->pMethods->xTruncate(realFile(base), size);
}
static int passSync(sqlite3_file *base, int flags) { return realFile(base)->pMethods->xSync(realFile(base), flags); }
static int passFileSize(sqlite3_file *base, sqlite3_int64 *size) {
    return realFile(base)->pMethods->xFileSize(realFile(base), size);
}
static int passFileControl(sqlite3_file *base, int op, void *argument) {
    return realFile(base)->pMethods->xFileControl(realFile(base), op, argument);
}
static int passLock(sqlite3_file *base, int level) { return realFile(base)->pMethods->xLock(realFile(base), level); }
static int passUnlock(sqlite3_file *base, int level) {
    return realFile(base)->pMethods->xUnlock(realFile(base), level);
}
static int passCheckReservedLock(sqlite3_file *base, int *result) {
    return realFile(base)->pMethods->xCheckReservedLock(realFile(base), result);
}
static int passSectorSize(sqlite3_file *base) { return realFile(base)->pMethods->xSectorSize(realFile(base)); }
static int passDeviceCharacteristics(sqlite3_file *base) {
    return realFile(base)->pMethods->xDeviceCharacteristics(realFile(base));
}
static int passShmMap(sqlite3_file *base, int page, int pageSize, int extend, void volatile **memory) {
    return realFile(base)->pMethods->xShmMap(realFile(base), page, pageSize, extend, memory);
}
static int passShmLock(sqlite3_file *base, int offset, int count, int flags) {
    return realFile(base)->pMethods->xShmLock(realFile(base), offset, count, flags);
}

/// The WAL's write lock is lock 0 of the shared-memory index (`WAL_WRITE_LOCK` in SQLite's wal.c).
enum { WAL_WRITE_LOCK = 0 };

/// A database file's: before its WAL's write lock goes, what its WAL file gathered is written.
static int databaseShmLock(sqlite3_file *base, int offset, int count, int flags) {
    // Any release that covers the write lock (SQLite 3.40 releases it alone, exclusively).
    if (offset <= WAL_WRITE_LOCK && offset + count > WAL_WRITE_LOCK && (flags & SQLITE_SHM_UNLOCK) != 0) {
        writeGatheredOf(((GatheringFile *)base)->database);
    }
    return realFile(base)->pMethods->xShmLock(realFile(base), offset, count, flags);
}

/// A database file's: in exclusive locking mode SQLite takes no WAL write lock (no xShmLock), and
/// leaving that mode releases the file lock instead; what its WAL file gathered is written first.
static int databaseUnlock(sqlite3_file *base, int level) {
    writeGatheredOf(((GatheringFile *)base)->database);
    return realFile(base)->pMethods->xUnlock(realFile(base), level);
}
static void passShmBarrier(sqlite3_file *base) { realFile(base)->pMethods->xShmBarrier(realFile(base)); }
static int passShmUnmap(sqlite3_file *base, int deleteFlag) {
    return realFile(base)->pMethods->xShmUnmap(realFile(base), deleteFlag);
}
static int passFetch(sqlite3_file *base, sqlite3_int64 offset, int amount, void **pointer) {
    return realFile(base)->pMethods->xFetch(realFile(base), offset, amount, pointer);
}
static int passUnfetch(sqlite3_file *base, sqlite3_int64 offset, void *pointer) {
    return realFile(base)->pMethods->xUnfetch(realFile(base), offset, pointer);
}

static void makeMethods(sqlite3_io_methods *methods, int gathers, int version);

static int gatheringOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *base, int flags, int *outFlags) {
    (void)vfs;
    GatheringFile *file = (GatheringFile *)base;
    memset(file, 0, sizeof(GatheringFile));
    file->real = (sqlite3_file *)&file[1];
    int rc = realVFS->xOpen(realVFS, name, file->real, flags, outFlags);
    if (rc != SQLITE_OK || file->real->pMethods == NULL) {
        // SQLite calls no method of a file whose pMethods is NULL (xClose included): a real file
        // left half open is closed here.
        if (file->real->pMethods != NULL) file->real->pMethods->xClose(file->real);
        base->pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    // Without powersafe overwrite SQLite pads a commit to a sector boundary and splits a frame
    // there; such a WAL is written as SQLite asks.
    int powersafe =
        (file->real->pMethods->xDeviceCharacteristics(file->real) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
    file->gathers = (flags & SQLITE_OPEN_WAL) != 0 && powersafe
        && atomic_load_explicit(&gathering, memory_order_relaxed);
    makeMethods(&file->methods, file->gathers, file->real->pMethods->iVersion);
    if ((flags & SQLITE_OPEN_MAIN_DB) != 0 && name != NULL) {
        file->database = name;
        file->methods.xUnlock = databaseUnlock;
        if (file->methods.iVersion >= 2) file->methods.xShmLock = databaseShmLock;
    }
    // The name SQLite opens a WAL with is one of its database's filenames: without one, nothing
    // could write what it gathered before a lock goes, so it does not gather.
    if (file->gathers && name == NULL) {
        file->gathers = 0;
        makeMethods(&file->methods, 0, file->real->pMethods->iVersion);
    }
    if (file->gathers) {
        file->database = sqlite3_filename_database(name);
        pthread_mutex_lock(&registryLock);
        file->next = registry;
        if (registry != NULL) registry->previous = file;
        registry = file;
        pthread_mutex_unlock(&registryLock);
    }
    base->pMethods = &file->methods;
    return SQLITE_OK;
}

static void makeMethods(sqlite3_io_methods *methods, int gathers, int version) {
    methods->iVersion = version < 3 ? version : 3;
    methods->xClose = gathers ? gatheringClose : passClose;
    methods->xRead = gathers ? gatheringRead : passRead;
    methods->xWrite = gathers ? gatheringWrite : passWrite;
    methods->xTruncate = gathers ? gatheringTruncate : passTruncate;
    methods->xSync = gathers ? gatheringSync : passSync;
    methods->xFileSize = gathers ? gatheringFileSize : passFileSize;
    methods->xLock = passLock;
    methods->xUnlock = passUnlock;
    methods->xCheckReservedLock = passCheckReservedLock;
    methods->xFileControl = gathers ? gatheringFileControl : passFileControl;
    methods->xSectorSize = passSectorSize;
    methods->xDeviceCharacteristics = passDeviceCharacteristics;
    methods->xShmMap = version >= 2 ? passShmMap : NULL;
    methods->xShmLock = version >= 2 ? passShmLock : NULL;
    methods->xShmBarrier = version >= 2 ? passShmBarrier : NULL;
    methods->xShmUnmap = version >= 2 ? passShmUnmap : NULL;
    methods->xFetch = version >= 3 ? passFetch : NULL;
    methods->xUnfetch = version >= 3 ? passUnfetch : NULL;
}

static int registered = SQLITE_ERROR;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void registerOnce(void) {
    realVFS = sqlite3_vfs_find(NULL);
    if (realVFS == NULL) return;
    gatheringVFS = *realVFS;
    gatheringVFS.zName = "privatus-wal-writes";
    gatheringVFS.szOsFile = (int)sizeof(GatheringFile) + realVFS->szOsFile;
    gatheringVFS.xOpen = gatheringOpen;
    gatheringVFS.pAppData = NULL;
    gatheringVFS.pNext = NULL;
    registered = sqlite3_vfs_register(&gatheringVFS, 1);
}

int privatus_wal_writes_register(void) {
    pthread_once(&once, registerOnce);
    return registered;
}

void privatus_wal_writes_gather(int on) { atomic_store_explicit(&gathering, on != 0, memory_order_relaxed); }

void privatus_wal_writes_counts(uint64_t *seen, uint64_t *made) {
    *seen = atomic_load_explicit(&writesSeen, memory_order_relaxed);
    *made = atomic_load_explicit(&writesMade, memory_order_relaxed);
}
