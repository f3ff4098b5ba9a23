//! The `#[authorize(...)]` attribute of `cerbos-axum`; use it through that
//! crate, which documents it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Ident, ItemFn, LitStr, Path, Token, Type, bracketed,
    parse::{Parse, ParseStream},
    parse_macro_input,
    punctuated::Punctuated,
};

/// The options of the attribute.
struct Options {
    kind: LitStr,
    actions: Vec<LitStr>,
    permissions: Vec<LitStr>,
    id: Option<LitStr>,
    load: Option<Path>,
    state: Option<Type>,
}

const OPTIONS: &str = "kind, actions, permissions, id, load, state";

fn string_list(input: ParseStream<'_>, key: &Ident) -> syn::Result<Vec<LitStr>> {
    let content;
    bracketed!(content in input);
    let list: Punctuated<LitStr, Token![,]> = content.parse_terminated(|i| i.parse(), Token![,])?;
    for action in &list {
        if action.value().trim().is_empty() {
            return Err(syn::Error::new(
                action.span(),
                format!("`{key}` has an empty action name"),
            ));
        }
    }
    Ok(list.into_iter().collect())
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut kind = None;
        let mut actions: Option<(Ident, Vec<LitStr>)> = None;
        let mut permissions = None;
        let mut id = None;
        let mut load = None;
        let mut state = None;
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let duplicate = || syn::Error::new(key.span(), format!("`{key}` is given twice"));
            match key.to_string().as_str() {
                "kind" => {
                    let value: LitStr = input.parse()?;
                    if value.value().trim().is_empty() {
                        return Err(syn::Error::new(value.span(), "`kind` must not be empty"));
                    }
                    if kind.replace(value).is_some() {
                        return Err(duplicate());
                    }
                }
                "actions" => {
                    let list = string_list(input, &key)?;
                    if actions.replace((key.clone(), list)).is_some() {
                        return Err(duplicate());
                    }
                }
                "permissions" => {
                    if permissions.replace(string_list(input, &key)?).is_some() {
                        return Err(duplicate());
                    }
                }
                "id" => {
                    let value: LitStr = input.parse()?;
                    if id.replace(value).is_some() {
                        return Err(duplicate());
                    }
                }
                "load" => {
                    if load.replace(input.parse::<Path>()?).is_some() {
                        return Err(duplicate());
                    }
                }
                "state" => {
                    if state.replace(input.parse::<Type>()?).is_some() {
                        return Err(duplicate());
                    }
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{other}`: expected one of {OPTIONS}"),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        let kind = kind.ok_or_else(|| {
            syn::Error::new(
                Span::call_site(),
                "missing `kind = \"...\"`: the kind of the resource to check",
            )
        })?;
        let actions = match actions {
            None => {
                return Err(syn::Error::new(
                    Span::call_site(),
                    "missing `actions = [\"...\"]`: the actions that must be allowed",
                ));
            }
            Some((key, list)) if list.is_empty() => {
                return Err(syn::Error::new(
                    key.span(),
                    "`actions` needs at least one action that must be allowed",
                ));
            }
            Some((_, list)) => list,
        };
        Ok(Options {
            kind,
            actions,
            permissions: permissions.unwrap_or_default(),
            id,
            load,
            state,
        })
    }
}

/// Authorizes an axum handler with Cerbos before anything else runs.
///
/// ```text
/// #[authorize(
///     kind = "contact",                   // required: the resource kind
///     actions = ["read"],                 // required: all must be allowed
///     permissions = ["update", "delete"], // optional: extra PermissionMap actions
///     id = "id",                          // optional: the path parameter with the id
///                                         //   (default: `id`, or the only parameter)
///     load = load_contact,                // optional: async fn completing the resource
///     state = AppState,                   // optional: the router state type
/// )]
/// async fn show(permissions: PermissionMap) -> String { ... }
/// ```
///
/// The attribute puts a `cerbos_axum::Authorized<_>` extractor first in
/// the handler's arguments. It resolves the principal (with the
/// [`Cerbos`] the `Authorizer` in the router state was made from), takes
/// the id from the route's path parameter, calls the loader, and asks the
/// PDP about every action in one `CheckResources` call, all before the
/// handler's other extractors run. It rejects exactly like the layer (401,
/// 404, 403, 503 for a PDP that gives no usable answer, or the custom
/// rejection handler's response). When the request is allowed, the `Decision`, `PermissionMap`,
/// `Principal` and `Resource` are in the request extensions, so the
/// handler can take them as arguments.
///
/// The router state must give an `Authorizer` (`Authorizer: FromRef<S>`).
/// The loader is `async fn(Resource) -> Result<Option<Resource>,
/// ResolveError>`, or with `state = S`, `async fn(Resource, &S) -> …`.
/// `Ok(None)` is a 404.
///
/// Misuse is a compile error that says what is wrong: an unknown or
/// repeated option, a missing `kind` or `actions`, an empty action, a
/// handler that is not an `async fn`.
///
/// [`Cerbos`]: https://docs.rs/cerbos-tower
#[proc_macro_attribute]
pub fn axum_authorize(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr as Options);
    let function = parse_macro_input!(item as ItemFn);
    expand(Framework::Axum, options, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Authorizes an actix-web handler with Cerbos before its body runs.
///
/// ```text
/// #[authorize(
///     kind = "contact",                   // required: the resource kind
///     actions = ["read"],                 // required: all must be allowed
///     permissions = ["update", "delete"], // optional: extra PermissionMap actions
///     id = "id",                          // optional: the path parameter with the id
///     load = load_contact,                // optional: async fn(Resource, HttpRequest)
///                                         //   -> Result<Option<Resource>, ResolveError>
/// )]
/// async fn show(permissions: PermissionMap) -> String { ... }
/// ```
///
/// The attribute puts a `cerbos_actix::Authorized<_>` extractor first in
/// the handler's arguments. It resolves the principal (with the
/// [`Cerbos`] the `Authorizer` registered in the app data was made from,
/// `App::app_data(cerbos.authorizer())`), takes the id
/// from `match_info`, calls the loader (which reads app data such as a
/// database pool from the request), and asks the PDP about every action in
/// one `CheckResources` call. The handler body runs only when the request
/// is allowed. Rejections are those of the guard. The `Decision`,
/// `PermissionMap`, `Principal` and `Resource` are then in the request
/// extensions, so the handler can take them as arguments.
///
/// Misuse is a compile error that says what is wrong, as for axum; `state`
/// is axum-only.
///
/// [`Cerbos`]: https://docs.rs/cerbos-tower
#[proc_macro_attribute]
pub fn actix_authorize(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr as Options);
    let function = parse_macro_input!(item as ItemFn);
    expand(Framework::Actix, options, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The `Declaration` (kind, actions, permissions, id parameter) of a
/// handler with `#[authorize(...)]`: `declaration!(show_contact)` or
/// `declaration!(handlers::show_contact)`, for tests that check every
/// (kind, action) the application asks about against its policies
/// (`cerbos_testkit::PolicyCoverage`). A path to a function without the
/// attribute is a compile error.
#[proc_macro]
pub fn declaration(input: TokenStream) -> TokenStream {
    let mut path = parse_macro_input!(input as Path);
    let Some(last) = path.segments.last_mut() else {
        return syn::Error::new(Span::call_site(), "expected the path of a handler")
            .into_compile_error()
            .into();
    };
    last.ident = format_ident!(
        "__cerbos_authorize_{}",
        last.ident,
        span = last.ident.span()
    );
    quote!(#path::DECLARATION).into()
}

#[derive(Clone, Copy, PartialEq)]
enum Framework {
    Axum,
    Actix,
}

fn expand(
    framework: Framework,
    options: Options,
    mut function: ItemFn,
) -> syn::Result<TokenStream2> {
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            function.sig.fn_token,
            "#[authorize] goes on an `async fn` handler",
        ));
    }
    if let Some(receiver) = function.sig.receiver() {
        return Err(syn::Error::new_spanned(
            receiver,
            "#[authorize] goes on a free `async fn` handler, not a method",
        ));
    }
    let Options {
        kind,
        actions,
        permissions,
        id,
        load,
        state,
    } = options;
    let marker = format_ident!("__cerbos_authorize_{}", function.sig.ident);
    let vis = &function.vis;
    let id = match id {
        Some(id) => quote!(::core::option::Option::Some(#id)),
        None => quote!(::core::option::Option::None),
    };
    // What differs between the frameworks: the crate, the `Spec` impl,
    // the loader's second argument (axum's state, actix's request) and
    // whether its future must be `Send` (axum) or may be local (actix).
    let (krate, spec_trait, context_ty, bound, load_call, extra) = match framework {
        Framework::Axum => {
            let (generics, state_ty) = match &state {
                Some(ty) => (quote!(), quote!(#ty)),
                None => (
                    quote!(<__S: ::core::marker::Send + ::core::marker::Sync>),
                    quote!(__S),
                ),
            };
            let where_clause = match &state {
                Some(_) => quote!(),
                None => quote!(
                    where ::cerbos_axum::Authorizer: ::cerbos_axum::__private::FromRef<__S>
                ),
            };
            // A declared state's missing `FromRef<S> for Authorizer` is
            // one error, at `state = S`, that names the impl (the function
            // body, not the impl, needs it: the handler stays a handler).
            let from_state = match &state {
                Some(ty) => quote_spanned!(ty.span()=>
                    ::cerbos_axum::__private::authorizer_from_state::<#ty>(state)
                ),
                None => quote!(::cerbos_axum::__private::authorizer_from_state::<__S>(
                    state
                )),
            };
            let authorizer = quote! {
                fn authorizer(state: &#state_ty) -> ::cerbos_axum::Authorizer {
                    #from_state
                }
            };
            let load_call = match (&load, &state) {
                (Some(load), Some(_)) => Some(quote!(#load(
                    resource,
                    ::cerbos_axum::__private::StateArg::state_arg(context)
                ))),
                (Some(load), None) => Some(quote!(#load(resource))),
                (None, _) => None,
            };
            (
                quote!(::cerbos_axum),
                quote!(impl #generics ::cerbos_axum::__private::Spec<#state_ty>),
                quote!(&#state_ty),
                quote!(::core::marker::Send),
                load_call,
                (where_clause, authorizer),
            )
        }
        Framework::Actix => {
            if let Some(state) = &state {
                return Err(syn::Error::new_spanned(
                    state,
                    "`state` is for axum: with actix-web the loader gets a `web::Data<T>` of \
                     the app data (a pool, say) or the `HttpRequest`",
                ));
            }
            (
                quote!(::cerbos_actix),
                quote!(impl ::cerbos_actix::__private::Spec),
                quote!(::cerbos_actix::__private::HttpRequest),
                quote!('static),
                // The loader's second argument (`web::Data<T>` or the
                // request) is inferred from its signature.
                load.as_ref().map(|load| {
                    quote!(async move {
                        let arg = ::cerbos_actix::__private::LoaderArg::from_request(&context)?;
                        #load(resource, arg).await
                    })
                }),
                (quote!(), quote!()),
            )
        }
    };
    let load_body = load_call.unwrap_or_else(|| {
        quote!(::core::future::ready(::core::result::Result::Ok(
            ::core::option::Option::Some(resource)
        )))
    });
    let (where_clause, authorizer) = extra;
    let spec = quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #marker;

        impl #marker {
            /// What the attribute declares (see `declaration!`).
            #[doc(hidden)]
            pub const DECLARATION: #krate::__private::Declaration = #krate::__private::Declaration {
                kind: #kind,
                actions: &[#(#actions),*],
                permissions: &[#(#permissions),*],
                id_param: #id,
            };
        }

        #spec_trait for #marker #where_clause {
            #authorizer

            const DECLARATION: #krate::__private::Declaration = #marker::DECLARATION;

            #[allow(unused_variables)]
            fn load(
                resource: #krate::Resource,
                context: #context_ty,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<
                    ::core::option::Option<impl #krate::__private::LoaderOutput>,
                    #krate::ResolveError,
                >,
            > + #bound {
                #load_body
            }
        }
    };
    match framework {
        Framework::Axum => {
            let guard: syn::FnArg = syn::parse_quote!(_: ::cerbos_axum::Authorized<#marker>);
            function.sig.inputs.insert(0, guard);
        }
        Framework::Actix => {
            // actix polls a handler's extractors together: the handler's
            // own extractors run inside `Authorized`, after the check, so
            // they see what it put into the extensions (and never run when
            // it rejects).
            let mut pats = Vec::new();
            let mut tys = Vec::new();
            for input in &function.sig.inputs {
                if let syn::FnArg::Typed(arg) = input {
                    pats.push(arg.pat.clone());
                    tys.push(arg.ty.clone());
                }
            }
            let args: syn::FnArg = syn::parse_quote!(
                __cerbos_args: ::cerbos_actix::Authorized<#marker, (#(#tys,)*)>
            );
            function.sig.inputs = std::iter::once(args).collect();
            let body = &function.block;
            function.block = syn::parse_quote!({
                let (#(#pats,)*) = __cerbos_args.into_inner();
                #body
            });
        }
    }
    Ok(quote! {
        #spec
        #function
    })
}
