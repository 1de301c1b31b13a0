// Stand-ins for the two @plone/volto/components the add-on uses, with the
// same props. Volto's Toast renders an icon, a hidden type label, the title
// in an <h4> and the content; UniversalLink renders a router <Link> for
// app paths and an <a> for external URLs.
export const Toast = ({ title, content, info, success, warning, error }) => {
  const kind = (info && 'info') || (success && 'success') || (warning && 'warning') || (error && 'error') || null;
  return (
    <div className="toast-inner-content" data-kind={kind}>
      {title && <h4>{title}</h4>}
      <div>{content}</div>
    </div>
  );
};

export const UniversalLink = ({ href, children, className }) => (
  <a href={href} className={className}>
    {children}
  </a>
);
