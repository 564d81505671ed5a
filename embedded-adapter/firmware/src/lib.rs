//! What the firmware binaries share: a SysTick time driver for Embassy and semihosting exits.
#![no_std]

use core::cell::{Cell, RefCell};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_queue_utils::Queue;

/// The mps2-an386 system clock.
pub const CORE_HZ: u32 = 25_000_000;

/// Embassy's clock: a 1 kHz SysTick counting milliseconds into 64 bits, and the timer queue it wakes.
pub struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<(Queue, u64)>>,
}

impl embassy_time_driver::Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &core::task::Waker) {
        critical_section::with(|cs| {
            let mut q = self.queue.borrow(cs).borrow_mut();
            if q.0.schedule_wake(at, waker) {
                let now = self.ticks.borrow(cs).get();
                q.1 = q.0.next_expiration(now);
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new((Queue::new(), u64::MAX))),
});

/// Starts the 1 kHz tick.
pub fn start_clock(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        let now = ticks.get() + 1;
        ticks.set(now);
        let mut q = DRIVER.queue.borrow(cs).borrow_mut();
        if now >= q.1 {
            q.1 = q.0.next_expiration(now);
        }
    });
}

/// Ends the QEMU run with `code` (0 is success) through semihosting.
pub fn exit(code: i32) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if code == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// A panic ends the run with failure after printing where (without the `report` feature, only
/// that it happened, so that measuring the footprint does not measure `core::fmt`).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    #[cfg(feature = "report")]
    cortex_m_semihosting::hprintln!("panic: {}", info);
    #[cfg(not(feature = "report"))]
    let _ = info;
    exit(1)
}
