//! drctl's integration tests, in one binary so the SDK-heavy crate links once
//! and one moto server (started on demand, on a free loopback port, and gone
//! when this process exits) serves every test that needs AWS.

mod apply;
mod aws_behaviour;
mod aws_model;
mod aws_model_tests;
mod bake;
mod bake_faults;
mod cli;
mod cloud;
mod converge;
mod drill;
mod engine;
mod fallback;
mod faults;
mod forecast;
mod gates;
mod graph;
mod layers;
mod locks;
mod notify;
mod operator;
mod pipeline;
mod preflight;
mod prompt;
mod provider;
mod proxy;
mod rto_bench;
mod sandbox;
mod schedule;
mod service;
mod store_cost;
mod support;
mod sweep;
mod sweep_images;
mod team;
mod validation;
