//! The service planner, pure: which colour to make, when to cut over, when to retire.
