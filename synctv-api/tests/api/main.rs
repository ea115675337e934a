//! The contract end to end, over real HTTP and WebSocket, on SQLite and on Postgres.

mod helpers;
mod party;
mod postgres;
mod process;
mod wait;
mod webhook_receiver;
mod ws_client;

mod address_limits;
mod auth;
mod cli;
mod contract;
mod drift;
mod garbage;
mod health;
mod history;
mod json_bodies;
mod lifecycle;
mod logout;
mod moderation;
mod origins;
mod outage;
mod queue;
mod realtime;
mod recovery;
mod redaction;
mod rooms;
mod server_api;
mod tickets;
mod waiting;
mod web;
mod webhooks;
mod ws_errors;
