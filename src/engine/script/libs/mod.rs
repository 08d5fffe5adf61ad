//! The libraries Redis gives scripts besides Lua's own: `cjson`, `cmsgpack`, `bit` and
//! `struct`, written again in Rust with the behaviour and error texts of the C libraries Redis
//! 7.0 bundles (deps/lua/src/lua_cjson.c, lua_cmsgpack.c, lua_bit.c, lua_struct.c).

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use mlua::{Lua, Table};

use crate::engine::script::raise::Raise;

/// Sets the libraries as globals of `globals`.
pub(crate) fn install(lua: &Lua, globals: &Table, raise: &Raise) -> mlua::Result<()> {
    bit::install(lua, globals, raise)?;
    structlib::install(lua, globals, raise)?;
    cjson::install(lua, globals, raise)?;
    cmsgpack::install(lua, globals, raise)?;
    Ok(())
}

#[cfg(test)]
mod testing {
    use mlua::{Lua, Table};

    use crate::engine::script::raise::Raise;

    /// A fresh state with one library, put in by `install`, and its `Raise`.
    pub(super) fn state(install: fn(&Lua, &Table, &Raise) -> mlua::Result<()>) -> mlua::Result<(Lua, Raise)> {
        let lua = Lua::new();
        let raise = Raise(lua.create_table()?);
        install(&lua, &lua.globals(), &raise)?;
        Ok((lua, raise))
    }

    /// The error `code` raises, as the script sees it.
    pub(super) fn error(lua: &Lua, raise: &Raise, code: &str) -> mlua::Result<String> {
        assert!(lua.load(code).set_name("@user_script").exec().is_err(), "{code} should fail");
        raise.0.raw_get::<String>("pending")
    }
}
