// mp/mp.hpp - the whole library: Python's multiprocessing for C++20.
#pragma once

#include <mp/authkey.hpp>
#include <mp/codec.hpp>
#include <mp/connection.hpp>
#include <mp/context.hpp>
#include <mp/exceptions.hpp>
#include <mp/futures.hpp>
#include <mp/handle.hpp>
#include <mp/logging.hpp>
#include <mp/pool.hpp>
#include <mp/process.hpp>
#include <mp/queues.hpp>
#include <mp/resource_tracker.hpp>
#include <mp/shared_memory.hpp>
#include <mp/sharedctypes.hpp>
#include <mp/synchronize.hpp>
#include <mp/task.hpp>
#include <mp/time.hpp>
