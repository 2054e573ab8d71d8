//! Cluster mode (`REDIS_URL` set): several instances share rooms through Redis. Emits cross
//! instances through socketioxide's Redis adapter; the room registry lives in Redis
//! ([`store`]); each instance keeps a heartbeat and the survivors remove the participants of
//! an instance that died ([`liveness`]).

pub mod store;
